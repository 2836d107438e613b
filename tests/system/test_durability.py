"""Durability: a process killed (SIGKILL) in the middle of a checkpointed workflow, or of a
`ttc-agent collect` run, restarts without losing or double-counting finished work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ttc_agent.evaluation.collect import collect, read_traces

TESTS = Path(__file__).resolve().parents[1]
QUESTION = "What is 1 + 2 + 3 + 4 + 5 + 6?"

WORKER = """
import sys
sys.path.insert(0, {tests!r})
from fakes import bundle_for
from langgraph.checkpoint.sqlite import SqliteSaver
from ttc_agent.backends import TransformersBackend
from ttc_agent.budgets import WorkflowBudget
from ttc_agent.demo import make_graph
from ttc_agent.nodes import TTCContext, TTCEngine, TTCNode

backend = TransformersBackend()
node = TTCNode(TTCEngine(backend, bundle_for(backend.fingerprint())))
with SqliteSaver.from_conn_string({db!r}) as saver:
    app = make_graph(node, checkpointer=saver)
    config = {{"configurable": {{"thread_id": "w"}}}}
    context = TTCContext(lambda_tokens=1.0, budget=WorkflowBudget(max_tokens=20_000, scope="thread"))
    inputs = {{"question": {question!r}}} if sys.argv[1] == "start" else None
    app.invoke(inputs, config, context=context)
"""


def checkpointed_steps(db: Path) -> list[dict] | None:
    """The steps in the thread's latest checkpoint (None before the first)."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    with SqliteSaver.from_conn_string(str(db)) as saver:
        saved = saver.get_tuple({"configurable": {"thread_id": "w"}})
    return None if saved is None else saved.checkpoint["channel_values"].get("steps", [])


@pytest.mark.slow
def test_a_workflow_killed_mid_run_resumes_from_its_checkpoint(tmp_path, embedded_dir):
    db = tmp_path / "checkpoints.sqlite"
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(TESTS), db=str(db), question=QUESTION))
    proc = subprocess.Popen([sys.executable, str(script), "start"], start_new_session=True)
    before = None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            steps = checkpointed_steps(db)
            if steps:
                before = steps
                break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert before and len(before) < 5, "killed after the first step was checkpointed, before the last"

    subprocess.run([sys.executable, str(script), "resume"], check=True, timeout=300)
    from langgraph.checkpoint.sqlite import SqliteSaver

    with SqliteSaver.from_conn_string(str(db)) as saver:
        final = saver.get_tuple({"configurable": {"thread_id": "w"}}).checkpoint["channel_values"]
    steps, ledger = final["steps"], final["ttc_ledger"]
    assert [s["question"] for s in steps][: len(before)] == [s["question"] for s in before]
    assert steps[: len(before)] == before, "finished steps are kept, not run again"
    assert len(steps) == 5 and final["messages"][-1].content.startswith("What is 1 + 2?")
    assert ledger.calls == 5, "each finished call is counted once (the killed one is not counted)"
    assert ledger.tokens == sum(s["tokens"] for s in steps)


@pytest.mark.slow
def test_a_collection_killed_mid_run_resumes_without_duplicates(tmp_path, embedded_dir):
    menu = tmp_path / "menu.yaml"
    menu.write_text("strategies: [greedy, 'best_of_n(2, select=majority)']\ndefaults: {max_tokens: 24}\n")
    out = tmp_path / "traces"
    cmd = [str(Path(sys.executable).with_name("ttc-agent")), "collect", "--dataset", "arithmetic",
           "--level", "1", "--per-level", "4", "--menu", str(menu), "--out", str(out), "--repeats", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "traces.jsonl").is_file() and len((out / "traces.jsonl").read_bytes().splitlines()) >= 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = read_traces(out)
    assert 2 <= len(kept) < 8, "killed part-way"
    # A record half-written by the kill must not swallow the next one.
    with (out / "traces.jsonl").open("a") as f:
        f.write('{"problem_id": "cut off mid-li')
    subprocess.run(cmd, check=True, timeout=300, stdout=subprocess.DEVNULL)
    records = read_traces(out)
    keys = [(r["problem_id"], r["strategy"], r["repeat"]) for r in records]
    assert len(keys) == len(set(keys)) == 8, "every run once: none lost, none twice"
    assert all(r in records for r in kept), "the runs finished before the kill are kept as they were"
    assert all(line.startswith("{") and json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines())


def test_a_half_written_trace_line_is_cut_before_appending(tmp_path):
    from fakes import ScriptedBackend, texts

    from ttc_agent.evaluation.datasets import arithmetic
    from ttc_agent.strategies.menu import Menu

    problems = arithmetic(per_level=2, levels=(1,), seed=0)
    menu = Menu(("greedy",), {"max_tokens": 8})
    backend = ScriptedBackend(texts("= 5"))
    assert collect(problems[:1], menu, backend, tmp_path) == 1
    with (tmp_path / "traces.jsonl").open("a") as f:
        f.write('{"problem_id": "half')
    assert collect(problems, menu, backend, tmp_path) == 1
    lines = (tmp_path / "traces.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line) for line in lines)
