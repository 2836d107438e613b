"""Strategies replayed from a trace pool: the samples each would have used, their tokens, and seconds
from a latency model."""

from __future__ import annotations

import json
import math

import pytest
from fakes import ScriptedBackend, texts
from typer.testing import CliRunner

from ttc_agent.cli import app
from ttc_agent.errors import InvalidRequestError
from ttc_agent.evaluation.collect import read_meta, read_traces
from ttc_agent.evaluation.datasets import Problem
from ttc_agent.evaluation.pool_replay import PoolTooSmallError, replay_pool
from ttc_agent.evaluation.pools import PoolSpec, collect_pool, read_pool
from ttc_agent.probes import TraceTable
from ttc_agent.probes.latency import LatencyModel

LATENCY = LatencyModel((1.0, 0.0, 0.1, 0.01, 0.0))  # 1 s a round + 0.1 s a sample + 0.01 s a decoding step
GOLD = Problem("q", "What is 2 + 2?", "4", "test")


def sample(answer, tokens=10, finish="stop", confidence=-0.5, means=None):
    return {"answer": answer, "correct": answer == "4", "tokens": tokens, "finish": finish, "text": "",
            "confidence": confidence, "mean_logprob": confidence, "window_means": means or [confidence]}  # fmt: skip


def pool(samples, greedy=None, max_tokens=64):
    greedy = greedy or sample("5", tokens=6)
    base = {"schema": "pool-1", "dataset": "test", "problem_id": "q", "level": 0, "scope": "all",
            "messages": [{"role": "user", "content": "What is 2 + 2?"}], "gold": "4", "max_tokens": max_tokens,
            "prompt_tokens": 20}  # fmt: skip
    return [{**base, "temperature": 0.0, "samples": [greedy]}, {**base, "temperature": 0.5, "samples": samples}]


def one(records, spec):
    (rec,) = replay_pool(records, [spec], LATENCY, max_tokens=64)
    return rec


def test_best_of_n_uses_the_first_k_samples_and_pays_for_them():
    records = pool([sample("4"), sample("3"), sample("4", tokens=30), sample("3"), sample("3"), sample("3")])
    rec = one(records, "best_of_n(4, select=majority, temperature=0.5)")
    assert rec["answer"] == "4" and rec["correct"] and len(rec["candidates"]) == 4
    assert rec["completion_tokens"] == 60 and rec["total_tokens"] == 80 and rec["rounds"] == 1
    # A round decodes until its longest sample ends (30 tokens), not its mean (15).
    assert rec["seconds"] == pytest.approx(1.0 + 0.1 * 4 + 0.01 * 30)
    assert one(records, "best_of_n(6, select=majority, temperature=0.5)")["answer"] == "3"
    greedy = one(records, "greedy")
    assert (greedy["answer"], greedy["completion_tokens"], greedy["correct"]) == ("5", 6, False)


def test_weighted_and_confident_votes_read_the_recorded_confidence():
    records = pool([sample("4", confidence=-0.1), sample("3", confidence=-2.0), sample("3", confidence=-2.0)])
    assert one(records, "best_of_n(3, select=majority, temperature=0.5)")["answer"] == "3"
    assert one(records, "best_of_n(3, select=weighted_majority, temperature=0.5)")["answer"] == "4"  # 0.90 > 2 x 0.14
    assert one(records, "best_of_n(3, select=verifier, temperature=0.5)")["answer"] == "4"  # exp(mean logprob)
    assert one(records, "best_of_n(3, select=confident_majority, keep=0.3, temperature=0.5)")["answer"] == "4"
    assert one(records, "best_of_n(3, select=verifier, temperature=0.5)")["candidates"][0]["score"] == pytest.approx(
        math.exp(-0.1)
    )


def test_adaptive_sc_stops_when_its_rule_settles_and_counts_its_rounds():
    agreeing = pool([sample("4")] * 8)
    rec = one(agreeing, "adaptive_sc(max_n=8, batch=2, threshold=0.8, temperature=0.5)")
    assert rec["stop_reason"] == "converged" and rec["rounds"] < 4 and rec["prompt_tokens"] == 20 * rec["rounds"]
    split = pool([sample("4"), sample("3")] * 4)
    rec = one(split, "adaptive_sc(max_n=8, batch=2, threshold=0.95, temperature=0.5)")
    assert (rec["stop_reason"], rec["rounds"], rec["completion_tokens"]) == ("max_n", 4, 80)
    assert rec["seconds"] == pytest.approx(4 * (1.0 + 0.2 + 0.1))


def test_deepconf_cuts_later_samples_where_a_window_falls_below_the_warmup_floor():
    warm = [sample("4", tokens=40, confidence=-0.2, means=[-0.2])] * 4
    falling = sample("3", tokens=100, confidence=-3.0, means=[-0.2, -0.2, -3.0, -3.0])
    steady = sample("4", tokens=50, confidence=-0.2, means=[-0.2, -0.2])
    rec = one(pool([*warm, falling, steady]), "deepconf(n=6, warmup=4, keep=0.9, temperature=0.5)")
    cut = rec["candidates"][4]
    assert cut["finish"] == "low_confidence" and cut["tokens"] == 32 + 2 * 8  # the third window's end
    assert rec["candidates"][5]["tokens"] == 50 and rec["completion_tokens"] == 160 + 48 + 50
    assert rec["answer"] == "4" and rec["rounds"] == 2


def test_what_cannot_be_replayed_is_refused_naming_why():
    records = pool([sample("4")] * 4)
    with pytest.raises(PoolTooSmallError, match=r"needs 8 samples at temperature 0.5.*holds 4"):
        one(records, "best_of_n(8, select=majority, temperature=0.5)")
    with pytest.raises(PoolTooSmallError, match="temperature 0.7.*holds 0"):
        one(records, "best_of_n(2, select=majority)")
    with pytest.raises(InvalidRequestError, match="beam search"):
        one(records, "beam(width=2, expand=2, temperature=0.5)")
    with pytest.raises(InvalidRequestError, match="max_tokens=32.*drawn at 64"):
        replay_pool(records, ["greedy"], LATENCY, max_tokens=32)
    with pytest.raises(InvalidRequestError, match="no greedy run"):
        replay_pool(records[1:], ["greedy"], LATENCY, max_tokens=64)


def test_replay_cli_writes_a_trace_folder_the_probes_read(tmp_path):
    problems = [Problem(f"q{i}", f"What is {i} + {i}?", str(2 * i), "test") for i in range(4)]
    backend = ScriptedBackend(texts("The answer is 4.", "The answer is 2.", tokens=8))
    collect_pool(problems, backend, tmp_path / "pool", PoolSpec({0.5: 4}, max_tokens=32), progress=False,
                 questions_per_call=1)  # fmt: skip
    (tmp_path / "menu.yaml").write_text(
        "defaults: {max_tokens: 32, temperature: 0.5}\n"
        "strategies: [greedy, 'best_of_n(4, select=majority)', 'adaptive_sc(max_n=4, batch=2, threshold=0.9)']\n"
    )
    result = CliRunner().invoke(app, ["replay", str(tmp_path / "pool"), "--menu", str(tmp_path / "menu.yaml"),
                                      "--out", str(tmp_path / "traces")])  # fmt: skip
    assert result.exit_code == 0, result.output
    traces, meta = read_traces(tmp_path / "traces"), read_meta(tmp_path / "traces")
    assert len(traces) == 12 and all(r["replayed"] for r in traces)
    assert meta["replayed_from"]["pool_spec"] == {"samples": {"0.5": 4}, "max_tokens": 32}
    table = TraceTable.from_records(traces, meta["menu"]["strategies"])
    assert len(table.ids) == 4
    assert len(read_pool(tmp_path / "pool")) == 8
    # A question whose samples are still to be drawn (only its greedy run so far) is left out.
    with (tmp_path / "pool" / "pool.jsonl").open("a") as f:
        f.write(json.dumps({**read_pool(tmp_path / "pool")[0], "problem_id": "q9"}) + "\n")
    result = CliRunner().invoke(app, ["replay", str(tmp_path / "pool"), "--menu", str(tmp_path / "menu.yaml"),
                                      "--out", str(tmp_path / "traces")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "1 problems left out" in " ".join(result.output.split()) and len(read_traces(tmp_path / "traces")) == 12


def test_replayed_records_carry_the_menus_specs_whatever_its_default_temperature():
    """A menu sampling at 0.5 by default writes a strategy at the strategies' own default (0.7)
    with its temperature; the replayed records carry that spec, so the probes find them."""
    from ttc_agent.strategies.menu import Menu

    records = pool([sample("4"), sample("3")])
    records[1]["temperature"] = 0.7
    menu = Menu(("greedy", "best_of_n(2, select=majority, temperature=0.7)"), {"max_tokens": 64, "temperature": 0.5})
    runs = replay_pool(records, menu.specs, LATENCY, **menu.defaults)
    assert [r["strategy"] for r in runs] == list(menu.specs)
    assert TraceTable.from_records(runs, menu.specs).ids == ["q"]


def _replayed(tmp_path, name, prefix, menu):
    problems = [Problem(f"{prefix}{i}", f"What is {i} + {i}?", str(2 * i), "test") for i in range(1, 9)]
    backend = ScriptedBackend(texts("The answer is 4.", "The answer is 2.", "The answer is 6.", tokens=8))
    collect_pool(problems, backend, tmp_path / f"pool-{name}", PoolSpec({0.5: 4}, max_tokens=32), progress=False,
                 questions_per_call=2)  # fmt: skip
    result = CliRunner().invoke(app, ["replay", str(tmp_path / f"pool-{name}"), "--menu", str(menu),
                                      "--out", str(tmp_path / f"traces-{name}")])  # fmt: skip
    assert result.exit_code == 0, result.output
    return tmp_path / f"traces-{name}", tmp_path / f"pool-{name}"


def test_train_fits_one_bundle_on_several_tasks_pools(tmp_path):
    """`train` takes a trace folder and a pool per task (the shipped bundle is fitted on GSM8K's
    and arithmetic's), fits them as one, and refuses folders of different menus or one folder twice."""
    from ttc_agent.probes import ProbeBundle

    menu = tmp_path / "menu.yaml"
    menu.write_text("defaults: {max_tokens: 32, temperature: 0.5}\n"
                    "strategies: [greedy, 'best_of_n(4, select=majority)', 'two_stage(k=2, more=2)']\n")  # fmt: skip
    traces_a, pool_a = _replayed(tmp_path, "a", "a", menu)
    traces_b, pool_b = _replayed(tmp_path, "b", "b", menu)
    args = ["train", "--traces", str(traces_a), "--traces", str(traces_b), "--pool", str(pool_a), "--pool",
            str(pool_b), "--feature", "text_stats", "--out", str(tmp_path / "bundle"), "--test-fraction", "0.25"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    bundle = ProbeBundle.load(tmp_path / "bundle")
    trained = set(bundle.train_ids_)
    assert any(i.startswith("a") for i in trained) and any(i.startswith("b") for i in trained)
    assert list(bundle.stage2_) == [bundle.specs[2]] and bundle.specs[2].startswith("two_stage(k=2, more=2")

    other = tmp_path / "other.yaml"
    other.write_text(
        "defaults: {max_tokens: 32, temperature: 0.5}\nstrategies: [greedy, 'best_of_n(2, select=majority)']\n"
    )
    traces_c, _ = _replayed(tmp_path, "c", "c", other)
    mixed = CliRunner().invoke(app, ["train", "--traces", str(traces_a), "--traces", str(traces_c), "--feature",
                                     "text_stats", "--out", str(tmp_path / "mixed")])  # fmt: skip
    said = " ".join(mixed.output.split())
    assert mixed.exit_code != 0 and str(traces_a) in said and str(traces_c) in said and "menu" in said
    assert not (tmp_path / "mixed").exists()
    twice = CliRunner().invoke(app, ["train", "--traces", str(traces_a), "--traces", str(traces_a), "--feature",
                                     "text_stats", "--out", str(tmp_path / "twice")])  # fmt: skip
    assert twice.exit_code != 0 and "a1" in twice.output and "once" in twice.output
