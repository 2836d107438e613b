"""A caller's per-sample cap is the one the strategies run with, and the predictions follow it.

The menu's ``max_tokens`` is only the default: a call asking for more gets longer replies, the
probes predict tokens and seconds under the cap in force, the decision record and the server
say when a cap is beyond the traced one, and a workflow budget is still never overrun.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from fakes import ScriptedBackend, texts
from langchain_core.messages import HumanMessage
from langgraph.graph import START, MessagesState, StateGraph

from ttc_agent.budgets import BudgetState, WorkflowBudget
from ttc_agent.errors import InvalidRequestError
from ttc_agent.nodes import TTCChatModel, TTCContext, TTCEngine, TTCNode
from ttc_agent.nodes.engine import Call
from ttc_agent.probes import FeatureSet, ProbeBundle, TextStats
from ttc_agent.probes.length_cap import length_cuts, under_cap
from ttc_agent.report import length_cuts_by_strategy
from ttc_agent.strategies import parse_strategy
from ttc_agent.strategies.menu import Menu

MENU = Menu(("greedy", "best_of_n(4, select=majority)"), {"max_tokens": 24})


def traces(cut_share: float = 0.5, n: int = 40) -> list[dict]:
    """Synthetic traces at the menu's 24-token cap where ``cut_share`` of samples hit the cap."""
    rng = np.random.default_rng(0)
    records = []
    for i in range(n):
        for spec in MENU.specs:
            k = 4 if spec.startswith("best") else 1
            cands = [
                {"finish": "length", "tokens": 24} if rng.random() < cut_share else {"finish": "stop", "tokens": 12}
                for _ in range(k)
            ]
            completion = sum(c["tokens"] for c in cands)
            records.append({
                "problem_id": f"p{i}", "strategy": spec, "repeat": 0,
                "messages": [{"role": "user", "content": f"What is {i} + {2 * i}?"}],
                "correct": bool(rng.random() < 0.5), "prompt_tokens": 20, "completion_tokens": completion,
                "total_tokens": 20 + completion, "rounds": 1, "seconds": 0.01 * completion, "candidates": cands,
            })  # fmt: skip
    return records


@pytest.fixture(scope="module")
def bundle() -> ProbeBundle:
    return ProbeBundle(MENU, FeatureSet([TextStats()])).fit(traces())


def predict(bundle: ProbeBundle, cap: int | None):
    return bundle.predict([[{"role": "user", "content": "What is 3 + 6?"}]], [20], max_tokens=cap)


# -- strategies ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cap", [8, 200])
def test_a_callers_cap_replaces_the_strategys_own_higher_or_lower(cap):
    backend = ScriptedBackend(texts("The answer is 4.", tokens=100))
    outcome = parse_strategy("greedy", max_tokens=24).run("What is 2 + 2?", backend, max_tokens=cap)
    ((_, params),) = backend.calls
    assert params.max_tokens == cap
    assert outcome.cost.completion_tokens == min(cap, 100)


def test_without_a_callers_cap_the_strategys_own_applies():
    backend = ScriptedBackend(texts("4", tokens=100))
    parse_strategy("best_of_n(4, select=majority)", max_tokens=24).run("q", backend)
    assert backend.calls[0][1].max_tokens == 24


# -- predictions under the cap in force ------------------------------------------------------------


def test_length_cuts_count_the_samples_that_hit_the_cap():
    runs = [[{"candidates": [{"finish": "length"}, {"finish": "stop"}]}], [{"candidates": [{"finish": "length"}] * 2}]]
    assert length_cuts(runs) == 1.5
    assert length_cuts([[{"candidates": []}]]) == 0.0


def test_under_cap_moves_cut_samples_halfway_at_the_median_and_all_the_way_at_q90():
    out = {k: np.array([[100.0, 400.0]]) for k in ("tokens", "tokens_q90", "completion_tokens")}
    samples = np.array([[1.0, 4.0]])
    higher = under_cap(out, [24, 24], 124, np.array([0.5, 2.0]), samples)
    np.testing.assert_allclose(higher["completion_tokens"], [[100 + 0.5 * 0.5 * 100, 400 + 0.5 * 2 * 100]])
    np.testing.assert_allclose(higher["tokens_q90"], [[100 + 0.5 * 100, 400 + 2 * 100]])
    lower = under_cap(out, [24, 24], 10, np.array([0.5, 2.0]), samples)
    np.testing.assert_allclose(lower["completion_tokens"], [[10.0, 40.0]])  # no sample runs past 10
    assert (lower["tokens"] <= out["tokens"]).all()
    same = under_cap(out, [24, 24], 24, np.array([0.5, 2.0]), samples)
    np.testing.assert_allclose(same["tokens"], out["tokens"])


def test_the_bundle_predicts_under_the_cap_in_force(bundle):
    assert bundle.traced_max_tokens == (24, 24)
    for spec in MENU.specs:
        runs = [r for r in traces() if r["strategy"] == spec]
        cut = np.mean([sum(c["finish"] == "length" for c in r["candidates"]) for r in runs])
        assert bundle.length_cuts_[spec] == pytest.approx(cut) and cut > 0
    at_traced, default = predict(bundle, 24), predict(bundle, None)
    np.testing.assert_allclose(at_traced.tokens, default.tokens)
    np.testing.assert_allclose(at_traced.seconds, default.seconds)
    higher, lower = predict(bundle, 224), predict(bundle, 6)
    assert (higher.tokens > default.tokens).all() and (higher.tokens_q90 > default.tokens_q90).all()
    assert (higher.seconds > default.seconds).all()  # regressed seconds grow with the tokens
    assert (higher.tokens_q90 >= higher.tokens).all()
    assert (lower.completion_tokens <= np.array([[6, 24]]) + 1e-9).all()
    np.testing.assert_allclose(higher.accuracy, default.accuracy)
    with pytest.raises(InvalidRequestError, match="max_tokens"):
        predict(bundle, 0)


def test_length_cuts_round_trip_and_an_older_bundle_assumes_every_sample_cut(bundle, tmp_path):
    bundle.save(tmp_path / "b")
    loaded = ProbeBundle.load(tmp_path / "b")
    assert loaded.length_cuts_ == pytest.approx(bundle.length_cuts_)
    np.testing.assert_allclose(predict(loaded, 224).tokens_q90, predict(bundle, 224).tokens_q90)
    loaded.length_cuts_ = None  # as a bundle saved before length cuts were recorded
    older = predict(loaded, 224)
    assert (older.tokens_q90 >= predict(bundle, 224).tokens_q90).all()  # conservative


def test_the_shipped_bundles_record_their_length_cuts():
    from ttc_agent.demo import SHIPPED_BUNDLES

    for name, folder in SHIPPED_BUNDLES.items():
        shipped = ProbeBundle.load(folder)
        assert shipped.length_cuts_ is not None, name
        assert set(shipped.length_cuts_) == set(shipped.specs)


# -- the engine, its record and its warning -----------------------------------------------------


def test_a_call_beyond_the_traced_cap_runs_with_it_and_says_so(bundle, caplog):
    backend = ScriptedBackend(texts("First, 3 + 6 = 9. The answer is 9.", tokens=60))
    engine = TTCEngine(backend, bundle)
    call = Call([HumanMessage("What is 3 + 6?")], settings=TTCContext(strategy="greedy"), max_tokens=100)
    with caplog.at_level(logging.WARNING, logger="ttc_agent"):
        prompt = engine.prompt(call)
        ticket = engine.decide(call, prompt)
        engine.decide(call, prompt)  # warned once per process, not per call
    message = engine.finish(ticket, prompt, engine.run(ticket, call, prompt))
    record = message.response_metadata["ttc"]
    assert record["cap"] == {"max_tokens": 100, "traced_max_tokens": 24, "beyond_traced": True}
    assert record["actual"]["completion_tokens"] == 60 and record["finish_reason"] == "stop"
    assert record["cut_by_length"] == 0
    warned = [r for r in caplog.records if "beyond the 24" in r.getMessage()]
    assert len(warned) <= 1  # a test before this one may have warned for the same caps already
    assert engine.cap_record("greedy", None) == {"max_tokens": 24, "traced_max_tokens": 24, "beyond_traced": False}


def test_report_counts_replies_cut_by_length_per_strategy():
    records = [
        {"choice": "greedy", "finish_reason": "length", "cut_by_length": 1, "cap": {"beyond_traced": True}},
        {"choice": "greedy", "finish_reason": "stop", "cut_by_length": 0},
        {"choice": "bo4", "finish_reason": "stop", "cut_by_length": 2},
        {"choice": None},
        {"choice": "bo4"},  # a record written before finish reasons were recorded
    ]
    cuts = length_cuts_by_strategy(records)
    assert (cuts["greedy"].calls, cuts["greedy"].replies_cut, cuts["greedy"].beyond_traced) == (2, 1, 1)
    assert (cuts["bo4"].calls, cuts["bo4"].replies_cut, cuts["bo4"].samples_cut) == (2, 0, 2)


# -- the embedded model through the node and the chat model --------------------------------------

STORY = [HumanMessage("Write a long story about a dragon who learns to bake bread.")]


@pytest.fixture(scope="module")
def shipped_engine(tf_backend):
    from ttc_agent.demo import shipped_probes

    return TTCEngine(tf_backend, shipped_probes(tf_backend))


@pytest.mark.slow
def test_the_chat_model_gets_replies_longer_than_the_menus_cap(shipped_engine):
    traced = shipped_engine.probes.traced_max_tokens[0]
    model = TTCChatModel(engine=shipped_engine, max_tokens=traced + 40)
    reply = model.invoke(STORY, ttc={"strategy": "greedy"})
    assert reply.usage_metadata["output_tokens"] > traced
    assert reply.response_metadata["ttc"]["cap"]["max_tokens"] == traced + 40


@pytest.mark.slow
def test_the_node_runs_with_the_runs_cap_and_a_budget_is_never_overrun(shipped_engine):
    class State(MessagesState, BudgetState):
        pass

    g = StateGraph(State, context_schema=TTCContext)
    g.add_node("solve", TTCNode(shipped_engine))
    g.add_edge(START, "solve")
    app = g.compile()
    traced = shipped_engine.probes.traced_max_tokens[0]
    out = app.invoke({"messages": STORY}, context=TTCContext(strategy="greedy", max_tokens_per_sample=traced + 40))
    assert out["messages"][-1].usage_metadata["output_tokens"] > traced

    budget = WorkflowBudget(max_tokens=400, expected_calls=3, on_exhausted="end", scope="thread")
    state = {"messages": STORY}
    for _ in range(3):  # three calls of one workflow, each allowed far more per sample than traced
        state = app.invoke(state, context=TTCContext(budget=budget, max_tokens_per_sample=4 * traced))
    ledger = state["ttc_ledger"]
    assert 0 < ledger.tokens <= budget.max_tokens
    assert any((m.response_metadata.get("ttc") or {}).get("cap", {}).get("beyond_traced") for m in state["messages"])


# -- the reference model through `ttc-agent serve` ------------------------------------------------

WORD_PROBLEM = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many "
    "clips did Natalia sell altogether in April and May?\nSolve it step by step, then give the final answer as "
    "'The answer is N.'"
)


@pytest.mark.slow
def test_a_shipped_bundle_answers_a_word_problem_beyond_its_traced_cap_through_serve():
    """The embedded model's shipped bundle is traced at 64 tokens a sample (arithmetic); a word
    problem asked with max_tokens=320 is not cut at 64, and the response headers say the cap is
    beyond the traced one."""
    import openai
    from uvicorn_server import Running

    from ttc_agent.backends import TransformersBackend
    from ttc_agent.backends.models import TEST_MODEL
    from ttc_agent.budgets import ReservationPool
    from ttc_agent.demo import shipped_probes
    from ttc_agent.server import ChatService, create_app

    backend = TransformersBackend(TEST_MODEL)
    store = ReservationPool()
    engine = TTCEngine(backend, shipped_probes(backend), pool=store)
    traced = engine.probes.traced_max_tokens[engine.menu.specs.index("greedy")]
    with Running(create_app(ChatService(engine, store, model_name="smol"))) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)
        raw = client.chat.completions.with_raw_response.create(
            model="smol",
            messages=[{"role": "user", "content": WORD_PROBLEM}],
            max_tokens=320,
            extra_body={"ttc": {"strategy": "greedy"}},
        )
    reply = raw.parse()
    assert traced < reply.usage.completion_tokens <= 320
    assert raw.headers["x-ttc-max-tokens"] == "320"
    assert raw.headers["x-ttc-traced-max-tokens"] == str(traced)
    assert "beyond" in raw.headers["x-ttc-warning"]


def test_the_middleware_decides_and_runs_with_the_agent_models_cap():
    """A `create_agent` agent whose TTCChatModel asks for more per sample than the menu's cap:
    the middleware's decision and the run both use it."""
    from fakes import bundle_for
    from langchain.agents import create_agent

    from ttc_agent.nodes import TTCMiddleware

    backend = ScriptedBackend(texts("First, 3 + 6 = 9. The answer is 9.", tokens=60))
    engine = TTCEngine(backend, bundle_for(None))
    traced = engine.probes.traced_max_tokens[0]
    agent = create_agent(TTCChatModel(engine=engine, max_tokens=traced + 76), middleware=[TTCMiddleware(engine)])
    out = agent.invoke({"messages": [HumanMessage("What is 3 + 6?")]}, context={"strategy": "greedy"})
    reply = out["messages"][-1]
    assert reply.response_metadata["ttc"]["cap"]["max_tokens"] == traced + 76
    assert reply.usage_metadata["output_tokens"] == 60 > traced
    assert all(params.max_tokens == traced + 76 for _, params in backend.calls)


def test_many_replies_cut_by_length_are_warned_about_once(bundle, caplog):
    backend = ScriptedBackend(texts("First, 3 + 6 = 9 and then", tokens=200))  # never finishes in 24 tokens
    engine = TTCEngine(backend, bundle)
    model = TTCChatModel(engine=engine)
    with caplog.at_level(logging.WARNING, logger="ttc_agent"):
        for _ in range(12):
            reply = model.invoke([HumanMessage("What is 3 + 6?")], ttc={"strategy": "greedy"})
            assert reply.response_metadata["finish_reason"] == "length"
    warned = [r for r in caplog.records if "ended at the per-sample cap" in r.getMessage()]
    assert len(warned) == 1 and "max_tokens=24" in warned[0].getMessage()
