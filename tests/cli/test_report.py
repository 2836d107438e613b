"""`ttc-agent report` reads a decision trace, prints the steps and draws the cumulative cost."""

import json

from typer.testing import CliRunner

from ttc_agent.cli import app


def record(choice, tokens, seconds):
    return {
        "node": "solve",
        "choice": choice,
        "feasible": True,
        "limits": {"lambda_tokens": 0.001, "lambda_seconds": 0.0, "max_call_tokens": None, "max_call_seconds": None},
        "candidates": [
            {
                "strategy": "greedy",
                "accuracy": 0.5,
                "tokens": 60,
                "tokens_q90": 70,
                "seconds": 1.0,
                "utility": 0.44,
                "fits": True,
            },
            {
                "strategy": "best_of_n(4, select=majority)",
                "accuracy": 0.7,
                "tokens": 200,
                "tokens_q90": 240,
                "seconds": 2.0,
                "utility": 0.5,
                "fits": True,
            },
        ],
        "answer": "42",
        "actual": {
            "prompt_tokens": 40,
            "completion_tokens": tokens - 40,
            "verifier_tokens": 0,
            "total_tokens": tokens,
            "rounds": 1,
            "seconds": seconds,
        },
    }


def test_report_prints_steps_and_plots(tmp_path):
    trace = tmp_path / "run.jsonl"
    trace.write_text(
        "\n".join(json.dumps(r) for r in (record("greedy", 61, 1.1), record("best_of_n(4, select=majority)", 230, 2.4)))
        + "\n"
    )
    result = CliRunner().invoke(app, ["report", str(trace)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "2 decisions" in result.output and "total: 291 tokens, 3.50 s" in result.output
    assert "200→230" in result.output, "predicted and real tokens side by side"
    assert (tmp_path / "run.png").stat().st_size > 5000


def test_report_refuses_files_that_are_not_traces(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"hello": 1}\n')
    result = CliRunner().invoke(app, ["report", str(bad)])
    assert result.exit_code == 1 and "not a ttc decision record" in result.output
    result = CliRunner().invoke(app, ["report", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 1 and "no trace file" in result.output


def test_short_labels():
    from ttc_agent.report import short_label

    assert short_label("best_of_n(8, select=weighted_majority)") == "bo8 weighted_majority"
    assert short_label("beam(width=2, expand=4, max_steps=8)") == "beam 2x4"
    assert short_label("greedy") == "greedy"
    # Strategies that differ only in temperature get different labels.
    assert short_label("best_of_n(4, select=majority, temperature=0.5)") == "bo4 majority T0.5"
    assert short_label("best_of_n(4, select=majority, temperature=0.7)") == "bo4 majority T0.7"
    assert short_label("two_stage(k=4, more=12, temperature=0.5)") == "two_stage 4+12 T0.5"
    assert short_label("adaptive_sc(max_n=16, batch=4, threshold=0.95)") == "adaptive_sc 16"
    assert short_label("deepconf(n=16, warmup=4, keep=0.9, temperature=0.5)") == "deepconf 16 T0.5"
