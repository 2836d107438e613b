"""Bad input, each refused with a typed error naming the problem, before any work and with
nothing half-written (one place that lists them; the modules' own tests go deeper)."""

from __future__ import annotations

import json
import math

import pytest
from fakes import ScriptedBackend, bundle_for, texts
from langchain_core.messages import HumanMessage

from ttc_agent.budgets import BudgetError, WorkflowBudget
from ttc_agent.errors import InvalidRequestError
from ttc_agent.evaluation.collect import read_traces
from ttc_agent.evaluation.datasets import load_dataset
from ttc_agent.nodes import TTCEngine, TTCNode
from ttc_agent.strategies import parse_strategy
from ttc_agent.strategies.menu import Menu


@pytest.mark.parametrize("field", ["max_tokens", "max_seconds"])
@pytest.mark.parametrize("value", [-1, 0, math.nan, math.inf])
def test_budgets_that_are_negative_zero_nan_or_infinite(field, value):
    with pytest.raises(BudgetError, match=field):
        WorkflowBudget(**{field: value})


@pytest.mark.parametrize(
    "specs, match",
    [(("greedy", "greedy"), "twice"), (("greedy", "best_of_n(4)", "bon(4)"), "twice"), (("greedy", "nope"), "'nope'")],
)
def test_menus_with_duplicate_or_unknown_strategies(specs, match):
    with pytest.raises(InvalidRequestError, match=match):
        Menu(specs)


@pytest.mark.parametrize("spec", ["x" * 10_000, "best_of_n(" + "1," * 5000 + ")", "beam(width=" + "9" * 10_000 + ")"])
def test_a_strategy_spec_of_ten_thousand_characters_gets_a_short_error(spec):
    with pytest.raises(InvalidRequestError, match="longer than 400") as err:
        parse_strategy(spec)
    assert len(str(err.value)) < 200


def node() -> TTCNode:
    return TTCNode(TTCEngine(ScriptedBackend(texts("= 5")), bundle_for(None)))


def test_an_empty_message_list():
    with pytest.raises(InvalidRequestError, match="no messages"):
        node().respond([])


def test_a_message_longer_than_the_models_context():
    backend = ScriptedBackend(texts("= 5"))
    backend.context_length = 8  # the scripted backend counts 10 tokens for any prompt
    with pytest.raises(InvalidRequestError, match="10 tokens, more than the model's context of 8"):
        TTCNode(TTCEngine(backend, bundle_for(None))).respond([HumanMessage("What is 2 + 2?")])


def test_a_settings_object_with_unknown_fields():
    with pytest.raises(InvalidRequestError, match="unknown setting 'lamda_tokens'"):
        node().limits({"configurable": {"ttc": {"lamda_tokens": 1e-3}}})


def test_a_dataset_file_with_broken_lines(tmp_path):
    path = tmp_path / "qs.jsonl"
    path.write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n{broken\n")
    with pytest.raises(InvalidRequestError, match=r"qs.jsonl:2 is not valid JSON"):
        load_dataset(str(path))


def test_a_trace_folder_cut_off_mid_line_by_a_crash(tmp_path):
    record = {"schema": 1, "problem_id": "p1", "strategy": "greedy", "repeat": 0}
    (tmp_path / "traces.jsonl").write_text(json.dumps(record) + "\n" + json.dumps(record)[:25])
    assert read_traces(tmp_path) == [record], "the run in flight when it crashed is dropped, the rest kept"


@pytest.fixture
def saved_bundle(tmp_path):
    bundle_for({"backend": "scripted", "weights": "w1"}).save(tmp_path / "b")
    return tmp_path / "b"


def test_a_truncated_probe_bundle(saved_bundle):
    from ttc_agent.probes import ProbeBundle, ProbeMismatchError

    meta = json.loads((saved_bundle / "bundle.json").read_text())
    file = saved_bundle / meta["files"]["greedy"]["accuracy"]
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    with pytest.raises(ProbeMismatchError, match="is damaged"):
        ProbeBundle.load(saved_bundle)
    (saved_bundle / "bundle.json").write_text('{"schema": 1, "menu": ')
    with pytest.raises(ProbeMismatchError, match="bundle.json is damaged"):
        ProbeBundle.load(saved_bundle)


def test_a_bundle_whose_paths_leave_its_folder(saved_bundle, tmp_path):
    from ttc_agent.probes import ProbeBundle, ProbeMismatchError

    meta = json.loads((saved_bundle / "bundle.json").read_text())
    outside = tmp_path / "elsewhere.skops"
    outside.write_bytes((saved_bundle / meta["files"]["greedy"]["accuracy"]).read_bytes())
    meta["files"]["greedy"]["accuracy"] = "../elsewhere.skops"
    (saved_bundle / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(ProbeMismatchError, match="outside its folder: '../elsewhere.skops'"):
        ProbeBundle.load(saved_bundle)


def test_a_bundle_made_for_another_model(saved_bundle):
    from ttc_agent.probes import ProbeBundle, ProbeMismatchError

    with pytest.raises(ProbeMismatchError, match="trained on model"):
        ProbeBundle.load(saved_bundle, fingerprint={"weights": "not-the-same"})


def test_a_bundle_from_the_same_source_file_converted_again_loads(tmp_path):
    """A named model's identity is its pinned GGUF's sha256: a folder converted again with
    another weights digest is still the same model; another GGUF is not, whatever its digest."""
    from ttc_agent.probes import ProbeBundle, ProbeMismatchError

    source = {"name": "m", "gguf_sha256": "a" * 64}
    bundle_for({"backend": "scripted", "weights": "w1", "source": source}).save(tmp_path / "b")
    loaded = ProbeBundle.load(tmp_path / "b", fingerprint={"backend": "scripted", "weights": "w2", "source": source})
    assert loaded.fingerprint["weights"] == "w1"
    with pytest.raises(ProbeMismatchError, match="trained on model"):
        ProbeBundle.load(tmp_path / "b", fingerprint={"weights": "w1", "source": {"gguf_sha256": "b" * 64}})


def test_shipped_probes_for_a_model_none_is_shipped_for():
    from ttc_agent.demo import SHIPPED_BUNDLES, shipped_probes
    from ttc_agent.probes import ProbeMismatchError

    backend = ScriptedBackend(texts("= 5"))
    backend.fingerprint = lambda: {"backend": "scripted", "model": "mystery-7b", "weights": "0123abcd"}
    with pytest.raises(ProbeMismatchError, match="mystery-7b") as info:
        shipped_probes(backend)
    assert all(name in str(info.value) for name in SHIPPED_BUNDLES)
