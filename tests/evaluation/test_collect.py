"""Menus and trace collection: append-only, resumable, refusing mixed folders."""

import json
import os
from datetime import UTC, datetime, timedelta

import pytest
from fakes import ScriptedBackend, texts

from ttc_agent.errors import InvalidRequestError
from ttc_agent.evaluation.collect import collect, read_meta, read_traces, write_trace_folder
from ttc_agent.evaluation.datasets import arithmetic
from ttc_agent.strategies.menu import Menu

MENU = Menu(("greedy", "best_of_n(2, select=majority)"), {"max_tokens": 32})


def test_menu_from_yaml_canonicalises_and_refuses_duplicates(tmp_path):
    path = tmp_path / "menu.yaml"
    path.write_text("defaults: {max_tokens: 32}\nstrategies:\n  - greedy\n  - bon(2)\n")
    menu = Menu.load(path)
    assert menu.specs == ("greedy", "best_of_n(2, select=majority)") and menu.digest == MENU.digest
    with pytest.raises(InvalidRequestError, match="twice"):
        Menu(("best_of_n(2)", "bon(2, select=majority)"))
    with pytest.raises(InvalidRequestError, match="strategies"):
        Menu.from_dict({"strats": []})
    path.write_text("strategies: [greedy\n")
    with pytest.raises(InvalidRequestError, match="YAML"):
        Menu.load(path)


def test_collect_writes_every_run_and_resumes(tmp_path):
    problems = arithmetic(per_level=2, levels=(1,), seed=0)
    backend = ScriptedBackend(texts("= 5"))
    # greedy is deterministic: one run per problem; best-of-2 samples: two runs each
    assert collect(problems, MENU, backend, tmp_path, repeats=2, progress=False) == 2 * (1 + 2)
    records = read_traces(tmp_path)
    assert len(records) == 6
    assert {(r["problem_id"], r["strategy"], r["repeat"]) for r in records} == {
        (p.id, s, k) for p in problems for s in MENU.specs for k in range(1 if s == "greedy" else 2)
    }
    r = records[0]
    assert r["messages"] == problems[0].messages() and r["schema"] == 1
    assert {
        "correct",
        "prompt_tokens",
        "completion_tokens",
        "verifier_tokens",
        "total_tokens",
        "seconds",
        "rounds",
    } <= set(r)
    assert r["total_tokens"] == r["prompt_tokens"] + r["completion_tokens"] + r["verifier_tokens"]
    assert all(x["cpu"].endswith(f" x{os.cpu_count()}") and len(x["cpu"]) > 3 for x in records)
    finished = [datetime.fromisoformat(x["finished_at"]) for x in records]
    assert finished == sorted(finished) and all(abs(datetime.now(UTC) - t) < timedelta(minutes=5) for t in finished)
    assert r["candidates"][0]["text"] == "= 5" and r["candidates"][0]["correct"] in (True, False)
    calls = len(backend.calls)
    assert collect(problems, MENU, backend, tmp_path, repeats=2, progress=False) == 0
    assert len(backend.calls) == calls, "a restart skips what is done"
    assert collect(problems, MENU, backend, tmp_path, repeats=3, progress=False) == 2, "only the new repeat runs"
    assert read_meta(tmp_path)["menu"] == MENU.to_dict()


def test_a_crash_mid_write_loses_only_that_run(tmp_path):
    problems = arithmetic(per_level=1, levels=(1,), seed=0)
    collect(problems, MENU, ScriptedBackend(texts("= 5")), tmp_path, progress=False)
    with (tmp_path / "traces.jsonl").open("a") as f:
        f.write('{"schema": 1, "problem_id": "half')  # the run in flight when the process died
    assert len(read_traces(tmp_path)) == 2
    assert collect(problems, MENU, ScriptedBackend(texts("= 5")), tmp_path, repeats=2, progress=False) == 1


def test_async_collection_with_concurrency(tmp_path):
    problems = arithmetic(per_level=3, levels=(1,), seed=0)
    assert collect(problems, MENU, ScriptedBackend(texts("= 5")), tmp_path, concurrency=4, progress=False) == 6
    assert len(read_traces(tmp_path)) == 6


def test_resuming_with_another_menu_or_model_is_refused(tmp_path):
    problems = arithmetic(per_level=1, levels=(1,), seed=0)
    collect(problems, MENU, ScriptedBackend(texts("= 5")), tmp_path, progress=False)
    with pytest.raises(InvalidRequestError, match="another menu"):
        collect(problems, Menu(("greedy",)), ScriptedBackend(texts("= 5")), tmp_path, progress=False)
    other = ScriptedBackend(texts("= 5"))
    other.fingerprint = lambda: {"backend": "scripted", "model": "other"}
    with pytest.raises(InvalidRequestError, match="another backend"):
        collect(problems, MENU, other, tmp_path, progress=False)


def test_resuming_in_another_dtype_names_the_folders_dtype(tmp_path):
    problems = arithmetic(per_level=1, levels=(1,), seed=0)

    def backend(dtype, weights="w"):
        b = ScriptedBackend(texts("= 5"))
        b.fingerprint = lambda: {"backend": "vllm", "model": "m", "dtype": dtype, "weights": weights}
        return b

    collect(problems, MENU, backend("float32"), tmp_path, progress=False)
    with pytest.raises(InvalidRequestError, match=r"resume it in float32 \(--dtype float32"):
        collect(problems, MENU, backend("bfloat16"), tmp_path, progress=False)
    with pytest.raises(InvalidRequestError, match=r"'weights': 'other'}; use a new folder$"):
        collect(problems, MENU, backend("bfloat16", weights="other"), tmp_path, progress=False)
    assert collect(problems, MENU, backend("float32"), tmp_path, repeats=2, progress=False) == 1


def test_resuming_on_the_same_source_file_converted_again(tmp_path):
    problems = arithmetic(per_level=2, levels=(1,), seed=0)
    source = {"name": "m", "gguf_sha256": "a" * 64}

    def backend(weights, sha):
        b = ScriptedBackend(texts("= 5"))
        b.fingerprint = lambda: {
            "backend": "scripted",
            "model": "m",
            "weights": weights,
            "source": {**source, "gguf_sha256": sha},
        }
        return b

    collect(problems[:1], MENU, backend("w1", "a" * 64), tmp_path, progress=False)
    assert collect(problems, MENU, backend("w2", "a" * 64), tmp_path, progress=False) == 2
    with pytest.raises(InvalidRequestError, match="another backend"):
        collect(problems, MENU, backend("w1", "b" * 64), tmp_path, progress=False)


def test_bad_collection_arguments(tmp_path):
    with pytest.raises(InvalidRequestError, match="repeats"):
        collect([], MENU, ScriptedBackend(texts("1")), tmp_path, repeats=0)
    with pytest.raises(InvalidRequestError, match="no traces"):
        read_traces(tmp_path / "empty")
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "traces.jsonl").write_text(json.dumps({"schema": 99}) + "\n")
    with pytest.raises(InvalidRequestError, match="schema 99"):
        read_traces(tmp_path / "t")


def test_write_trace_folder_derives_a_folder_that_reads_back(tmp_path):
    problems = arithmetic(per_level=1, levels=(1,), seed=0)
    collect(problems, MENU, ScriptedBackend(texts("= 5")), tmp_path / "src", progress=False)
    records = read_traces(tmp_path / "src")
    meta = read_meta(tmp_path / "src")
    derived = [{**r, "strategy": "best_of_n(4, select=majority)"} for r in records if r["strategy"] == "greedy"]
    menu = {**meta["menu"], "strategies": [*meta["menu"]["strategies"], "best_of_n(4, select=majority)"]}
    out = write_trace_folder(tmp_path / "out", {**meta, "menu": menu}, records + derived)
    assert read_traces(out) == records + derived
    assert read_meta(out)["menu"]["strategies"][-1] == "best_of_n(4, select=majority)" and read_meta(out)["schema"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "traces.jsonl"], "no temporary files left"


def test_write_trace_folder_refuses_bad_input_and_keeps_the_old_folder(tmp_path):
    problems = arithmetic(per_level=1, levels=(1,), seed=0)
    collect(problems, MENU, ScriptedBackend(texts("= 5")), tmp_path, progress=False)
    records, meta = read_traces(tmp_path), read_meta(tmp_path)
    before = (tmp_path / "traces.jsonl").read_text()
    with pytest.raises(InvalidRequestError, match=r"best_of_n\(16\).*not on the menu"):
        write_trace_folder(tmp_path, meta, [*records, {**records[0], "strategy": "best_of_n(16)"}])
    with pytest.raises(InvalidRequestError, match="backend"):
        write_trace_folder(tmp_path, {"menu": meta["menu"]}, records)
    assert (tmp_path / "traces.jsonl").read_text() == before
    assert read_meta(tmp_path) == meta


@pytest.mark.slow
def test_collect_then_train_on_the_embedded_model(tmp_path, tf_backend):
    """A real, small pipeline: collect traces with the embedded model, then `ttc-agent train`."""
    from typer.testing import CliRunner

    from ttc_agent.cli import app

    problems = arithmetic(per_level=4, levels=(1, 3), seed=2)
    menu = Menu(("greedy", "best_of_n(2, select=majority)"), {"max_tokens": 24})
    collect(problems, menu, tf_backend, tmp_path / "traces", progress=False)
    records = read_traces(tmp_path / "traces")
    assert len(records) == 16
    assert all(r["completion_tokens"] > 0 and r["seconds"] > 0 for r in records)
    assert read_meta(tmp_path / "traces")["backend"] == tf_backend.fingerprint()
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--traces",
            str(tmp_path / "traces"),
            "--out",
            str(tmp_path / "probes"),
            "--feature",
            "text_stats",
            "--test-fraction",
            "0.4",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "held-out metrics" in result.output and (tmp_path / "probes" / "bundle.json").is_file()
