"""Your own workload: a reader and a grader of non-numeric answers (multiple choice), given as
functions or as module:function, so votes, collection, training and serving all work on it."""

from __future__ import annotations

import json

import pytest
import workload_mc
from fakes import ScriptedBackend
from langchain_core.messages import HumanMessage
from typer.testing import CliRunner

from ttc_agent.backends.base import Completion
from ttc_agent.cli import app
from ttc_agent.errors import InvalidRequestError
from ttc_agent.evaluation.collect import collect, read_traces
from ttc_agent.evaluation.datasets import Problem, load_dataset, with_workload
from ttc_agent.nodes import TTCChatModel, TTCEngine
from ttc_agent.probes import FeatureSet, ProbeBundle, TextStats
from ttc_agent.strategies.menu import Menu

MENU = Menu(("greedy", "best_of_n(4, select=majority)"), {"max_tokens": 32})
COLOURS = ["red", "blue", "green", "black"]


def questions(n: int = 16) -> list[Problem]:
    out = []
    for i in range(n):
        gold = "ABCD"[i % 4]
        options = " ".join(f"({letter}) {'a colour' if letter == gold else 'a dog'}" for letter in "ABCD")
        out.append(Problem(f"mc-{i}", f"Which is a colour? {options}", gold, "mc"))
    return with_workload(out, workload_mc.extract, workload_mc.grade)


def chooser():
    """Greedy answers the wrong letter; samples answer the right one three times in four, each
    worded differently (so only a reader that normalises them can vote them together)."""

    def make(prompt, params, i):
        text = prompt.messages[-1]["content"]
        gold = next(letter for letter in "ABCD" if f"({letter}) a colour" in text)
        wrong = "ABCD"[("ABCD".index(gold) + 1) % 4]
        if params.temperature == 0:
            reply = f"The answer is ({wrong})."
        else:
            reply = [f"Answer: {gold.lower()}", f"the answer is ({gold})", f"Answer: {wrong}", f"answer {gold}"][i % 4]
        return Completion(reply, "stop", 8, (-0.3,) * 8 if params.logprobs else None)

    return ScriptedBackend(make)


def test_votes_read_and_group_non_numeric_answers():
    backend = chooser()
    engine = TTCEngine(backend, ProbeBundle(MENU, FeatureSet([TextStats()])).fit(collected(backend)),
                       extract=workload_mc.extract)  # fmt: skip
    reply = TTCChatModel(engine=engine).invoke([HumanMessage(questions(1)[0].question)],
                                               ttc={"strategy": "best_of_n(4, select=majority)"})  # fmt: skip
    assert reply.response_metadata["ttc"]["answer"] == "A"  # "Answer: a", "(A)" and "A" vote together


def collected(backend, tmp_path=None) -> list[dict]:
    import tempfile
    from pathlib import Path

    out = Path(tmp_path or tempfile.mkdtemp()) / "traces"
    collect(questions(), MENU, backend, out, repeats=1, progress=False)
    return read_traces(out)


def test_collection_grades_with_the_workloads_grader_and_the_probes_train_on_it(tmp_path):
    records = collected(chooser(), tmp_path)
    by = {(r["problem_id"], r["strategy"]): r for r in records}
    assert not any(r["correct"] for r in records if r["strategy"] == "greedy")
    assert all(r["correct"] for r in records if r["strategy"].startswith("best_of_n"))
    assert by[("mc-1", "best_of_n(4, select=majority)")]["answer"] == "B"
    bundle = ProbeBundle(MENU, FeatureSet([TextStats()])).fit(records)
    pred = bundle.predict([[{"role": "user", "content": questions(2)[1].question}]], [30])
    assert pred.accuracy[0][1] > pred.accuracy[0][0]  # voting is what pays on this workload


def test_a_grader_that_raises_is_a_typed_error_and_leaves_whole_records(tmp_path):
    problems = with_workload(questions(4), workload_mc.extract, workload_mc.broken)
    with pytest.raises(InvalidRequestError, match="grader broken raised RuntimeError"):
        collect(problems, MENU, chooser(), tmp_path / "t", repeats=1, progress=False)
    text = (tmp_path / "t" / "traces.jsonl").read_text()
    assert text == "" or text.endswith("\n")


def test_the_cli_takes_the_workload_as_module_function(tmp_path):
    data = tmp_path / "mc.jsonl"
    data.write_text("".join(json.dumps({"question": p.question, "answer": p.answer}) + "\n" for p in questions(4)))
    (tmp_path / "menu.yaml").write_text("defaults: {max_tokens: 8}\nstrategies: [greedy]\n")
    args = ["collect", "--dataset", str(data), "--menu", str(tmp_path / "menu.yaml"), "--out", str(tmp_path / "o")]
    missing = CliRunner().invoke(app, [*args, "--extract", "workload_mc:nothing"])
    assert missing.exit_code == 1 and "workload_mc:nothing" in missing.output
    unimportable = CliRunner().invoke(app, [*args, "--grade", "no_such_module:grade"])
    assert unimportable.exit_code == 1 and "no_such_module" in unimportable.output
    assert not (tmp_path / "o" / "traces.jsonl").exists()  # refused before anything was collected
    loaded = with_workload(load_dataset(str(data)), workload_mc.extract, workload_mc.grade)
    assert loaded[0].is_correct("a") and loaded[0].extract("so the answer is (a).") == "A"


@pytest.mark.slow
def test_a_multiple_choice_collection_on_the_embedded_model(tmp_path):
    data = tmp_path / "mc.jsonl"
    data.write_text("".join(json.dumps({"question": p.question + " Reply 'Answer: X'.", "answer": p.answer}) + "\n"
                            for p in questions(3)))  # fmt: skip
    (tmp_path / "menu.yaml").write_text(
        "defaults: {max_tokens: 12}\nstrategies: [greedy, 'best_of_n(2, select=majority)']\n"
    )
    result = CliRunner().invoke(app, ["collect", "--dataset", str(data), "--menu", str(tmp_path / "menu.yaml"),
                                      "--out", str(tmp_path / "o"), "--repeats", "1", "--extract", "workload_mc:extract",
                                      "--grade", "workload_mc:grade"])  # fmt: skip
    assert result.exit_code == 0, result.output
    records = read_traces(tmp_path / "o")
    assert len(records) == 6
    for r in records:  # every answer is a letter or none, graded by the workload's grader
        assert r["answer"] in (None, "A", "B", "C", "D")
        assert r["correct"] == (r["answer"] == r["gold"])
