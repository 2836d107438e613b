"""The command line: version, enumerated choices, bad values refused before any model loads,
no tracebacks, and credentials for server backends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ttc_agent.cli import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("ttc-agent ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["collect", "--dataset", "gsm9k", "--menu", "m.yaml", "--out", "o"], "'gsm9k': expected one of"),
        (["collect", "--dataset", "gsm8k", "--menu", "m.yaml", "--out", "o", "--backend", "tgi"], "'tgi'"),
        (["demo", "--manager", "fancy"], "'fancy' is not one of"),
        (["run", "What is 2 + 2?", "--backend", "vllm", "--dtype", "float16"], "'float16' is not one of"),
    ],
)
def test_enumerated_choices_are_checked_by_the_parser(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and message in " ".join(result.output.split())  # a usage error


def test_bad_values_are_one_line_errors_before_any_model_loads(monkeypatch, tmp_path):
    import ttc_agent.backends

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(ttc_agent.backends, "load_backend", no_model)
    menu = tmp_path / "menu.yaml"
    menu.write_text("strategies: [greedy]\n")
    levels = runner.invoke(
        app,
        ["collect", "--dataset", "arithmetic", "--menu", str(menu), "--out", str(tmp_path / "o"), "--levels", "1,x"],
    )
    assert levels.exit_code == 1 and "--levels must be comma-separated integers" in levels.output
    assert "--levels is deprecated: repeat --level instead" in levels.output and "Traceback" not in levels.output
    typed = runner.invoke(app, ["collect", "--dataset", "arithmetic", "--menu", str(menu), "--out",
                                str(tmp_path / "o"), "--level", "x"])  # fmt: skip
    assert typed.exit_code == 2 and "--level" in typed.output  # a usage error, before any work
    both = runner.invoke(app, ["collect", "--dataset", "arithmetic", "--menu", str(menu), "--out",
                               str(tmp_path / "o"), "--level", "1", "--levels", "2"])  # fmt: skip
    assert both.exit_code == 1 and "not both" in both.output
    zero = runner.invoke(app, ["demo", "--max-tokens", "0"])
    assert zero.exit_code == 1 and "max_tokens must be an integer > 0, got 0" in zero.output
    key = runner.invoke(app, ["run", "What is 2 + 2?", "--api-key", "k"])
    assert key.exit_code == 1 and "--api-key is for server backends" in key.output
    store = runner.invoke(app, ["serve", "--store", "redis://x"])
    assert store.exit_code == 1 and "--store must be memory, sqlite:PATH or a postgresql:// URL" in store.output
    tok = runner.invoke(app, ["serve", "--tokenizer", "smollm2-135m"])
    assert tok.exit_code == 1 and "--tokenizer is for server backends" in tok.output
    timeout = runner.invoke(app, ["serve", "--backend-timeout", "600"])
    assert timeout.exit_code == 1 and "--backend-timeout is for server backends" in timeout.output
    keys = runner.invoke(app, ["serve", "--api-keys-file", str(tmp_path / "missing.txt")])
    assert keys.exit_code == 1 and "cannot read --api-keys-file" in keys.output
    dtype = runner.invoke(app, ["run", "What is 2 + 2?", "--dtype", "bfloat16"])
    assert dtype.exit_code == 1 and "--dtype bfloat16 is for the vllm backend, not 'transformers'" in dtype.output


@pytest.mark.parametrize("command", ["run", "collect", "profile", "serve"])
def test_dtype_reaches_the_vllm_backend(monkeypatch, tmp_path, command):
    import ttc_agent.backends
    from ttc_agent.errors import ModelLoadError

    seen: list[tuple[str, dict]] = []

    def record(spec, model=None, **kwargs):
        seen.append((spec, kwargs))
        raise ModelLoadError("stopped here")

    monkeypatch.setattr(ttc_agent.backends, "load_backend", record)
    menu = tmp_path / "menu.yaml"
    menu.write_text("strategies: [greedy]\n")
    args = {
        "run": ["run", "What is 2 + 2?"],
        "collect": ["collect", "--dataset", "arithmetic", "--menu", str(menu), "--out", str(tmp_path / "o")],
        "profile": ["profile", "--out", str(tmp_path / "lat.json")],
        "serve": ["serve"],
    }[command]
    result = runner.invoke(app, [*args, "--backend", "vllm", "--dtype", "float32"])
    assert result.exit_code != 0 and "stopped here" in result.output
    assert seen == [("vllm", {"dtype": "float32"})]


def test_openai_backend_reads_the_api_key_from_the_environment(monkeypatch):
    from ttc_agent.backends import OpenAIBackend

    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert OpenAIBackend("http://127.0.0.1:9/v1", "m")._client.api_key == "sk-from-env"
    assert OpenAIBackend("http://127.0.0.1:9/v1", "m", api_key="given")._client.api_key == "given"
    monkeypatch.delenv("OPENAI_API_KEY")
    assert OpenAIBackend("http://127.0.0.1:9/v1", "m")._client.api_key == "EMPTY"


def test_a_command_that_fails_says_why_on_stderr_and_exits_1(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 1
    assert "no trace file" in result.stderr and "no trace file" not in result.stdout


def test_json_output_of_report_train_and_evaluate(tmp_path):
    from fakes import MENU, synthetic_traces

    from ttc_agent.evaluation.collect import write_trace_folder

    write_trace_folder(tmp_path / "traces", {"menu": MENU.to_dict(), "backend": {"backend": "scripted", "model": "s"}},
                       [{**r, "schema": 1, "candidates": []} for r in synthetic_traces(n=60)])  # fmt: skip
    trained = runner.invoke(app, ["train", "--traces", str(tmp_path / "traces"), "--feature", "text_stats",
                                  "--out", str(tmp_path / "b"), "--json"])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    doc = json.loads(trained.stdout)
    assert doc["problems"] == 60 and set(doc["metrics"]) == set(MENU.specs)
    assert [v["strategy"] for v in doc["verdicts"]] == list(MENU.specs)
    assert all(v["accuracy"] in ("informative", "not yet shown informative", "nothing to learn (one outcome)")
               for v in doc["verdicts"])  # fmt: skip
    assert sorted(doc["plots"]) == [str(tmp_path / "b-fit.png"), str(tmp_path / "b-fit.svg")]
    assert all(Path(p).stat().st_size > 1000 for p in doc["plots"])
    table = runner.invoke(app, ["train", "--traces", str(tmp_path / "traces"), "--features", "text_stats",
                                "--out", str(tmp_path / "b2"), "--plot", str(tmp_path / "fit.png")])  # fmt: skip
    assert table.exit_code == 0 and "--features is deprecated" in table.output and "accuracy probe" in table.output
    assert (tmp_path / "fit.svg").is_file()
    evaluated = runner.invoke(app, ["evaluate", "--traces", str(tmp_path / "traces"), "--probes", str(tmp_path / "b"),
                                    "--out", str(tmp_path / "e"), "--bootstrap", "20", "--json"])  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    assert {"tokens", "seconds", "best_static"} <= set(json.loads(evaluated.stdout))
    log = tmp_path / "log.jsonl"
    record = {
        "choice": "greedy",
        "candidates": [],
        "actual": {"total_tokens": 30, "seconds": 1.0},
        "finish_reason": "length",
    }
    log.write_text(json.dumps(record) + "\n" + json.dumps({**record, "finish_reason": "stop"}) + "\n")
    reported = runner.invoke(app, ["report", str(log), "--json", "--plot", str(tmp_path / "p.png")])
    assert reported.exit_code == 0, reported.output
    doc = json.loads(reported.stdout)
    assert (doc["calls"], doc["total_tokens"], doc["by_strategy"]["greedy"]["replies_cut"]) == (2, 60, 1)


def test_shell_completion_is_on():
    assert "--install-completion" in runner.invoke(app, ["--help"]).output


@pytest.mark.slow
def test_run_prints_json_on_the_embedded_model():
    result = runner.invoke(app, ["run", "What is 2 + 3?", "--max-tokens", "8", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["strategy"] == "greedy" and doc["cost"]["completion_tokens"] <= 8 and len(doc["candidates"]) == 1


def test_serve_hands_its_backend_timeout_to_the_server_backend(monkeypatch):
    """`serve --backend-timeout` reaches the OpenAI-compatible backend (a slow machine's rounds
    of long samples outlast the default 60 s, and a timed-out request is retried)."""
    import ttc_agent.cli.serve as serve_cli
    from ttc_agent.errors import InvalidRequestError

    seen = {}

    def backend(*args, **options):
        seen.update(options)
        raise InvalidRequestError("stopped here")

    monkeypatch.setattr(serve_cli, "cli_backend", backend)
    result = CliRunner().invoke(app, ["serve", "--backend", "http://127.0.0.1:9/v1", "--backend-timeout", "900"])
    assert result.exit_code == 1 and "stopped here" in result.output and seen == {"timeout": 900.0}
