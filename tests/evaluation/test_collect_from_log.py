"""Collecting traces from a decision log: the engine keeps the prompts only when asked, the log
reads back as problems, and collecting from it needs a grader that judges a reply alone."""

from __future__ import annotations

import json

import pytest
import workload_mc
from fakes import MENU, ScriptedBackend, bundle_for, texts
from langchain_core.messages import HumanMessage
from typer.testing import CliRunner

from ttc_agent.cli import app
from ttc_agent.errors import InvalidRequestError
from ttc_agent.evaluation.collect import collect, read_traces
from ttc_agent.evaluation.datasets import load_dataset, with_workload
from ttc_agent.nodes import TTCChatModel, TTCEngine

QUESTIONS = ["What is 345 + 678?", "What is 12 + 30?", "Which is a vowel? (A) b (B) e"]


def log_of(tmp_path, record_prompts: bool):
    log = tmp_path / ("with.jsonl" if record_prompts else "without.jsonl")
    engine = TTCEngine(ScriptedBackend(texts("The answer is B.", tokens=6)), bundle_for(None), trace=log,
                       record_prompts=record_prompts)  # fmt: skip
    model = TTCChatModel(engine=engine)
    for q in QUESTIONS:
        model.invoke([HumanMessage(q)])
    return log


def test_prompts_reach_the_log_only_when_asked_and_read_back_as_problems(tmp_path):
    private = log_of(tmp_path, record_prompts=False)
    assert all("messages" not in json.loads(line) for line in private.read_text().splitlines())
    with pytest.raises(InvalidRequestError, match="record 0 is a decision without its prompt.*record_prompts=True"):
        load_dataset(str(private))
    problems = load_dataset(str(log_of(tmp_path, record_prompts=True)))
    assert [p.question for p in problems] == QUESTIONS and all(p.answer == "" for p in problems)


def test_collecting_from_a_log_traces_the_menu_and_needs_a_grader(tmp_path):
    log = log_of(tmp_path, record_prompts=True)
    args = ["collect", "--dataset", str(log), "--menu", str(tmp_path / "m.yaml"), "--out", str(tmp_path / "o")]
    (tmp_path / "m.yaml").write_text("strategies: [greedy]\n")
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 1 and "without gold answers" in refused.output and "--grade" in refused.output
    problems = with_workload(load_dataset(str(log)), workload_mc.extract, workload_mc.answered)
    backend = ScriptedBackend(texts("The answer is (B).", tokens=5))
    assert collect(problems, MENU, backend, tmp_path / "traces", repeats=1, progress=False) > 0
    runs = read_traces(tmp_path / "traces")
    assert {r["problem_id"] for r in runs} == {f"with-{i}" for i in range(3)}
    assert all(r["correct"] for r in runs) and {r["answer"] for r in runs} == {"B"}
