"""Out of distribution: prompts unlike a bundle's training prompts are flagged, recorded and not
trusted to the accuracy probes."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import NODE_MENU, ScriptedBackend, synthetic_traces, texts
from langchain_core.messages import HumanMessage

from ttc_agent.errors import InvalidRequestError
from ttc_agent.nodes import TTCChatModel, TTCEngine
from ttc_agent.probes import FeatureSet, ProbeBundle, TextStats
from ttc_agent.probes.novelty import FeatureNovelty

WORD_PROBLEM = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?"
)


def test_novelty_flags_far_prompts_and_few_near_ones():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(200, 4))
    novelty = FeatureNovelty(k=5, quantile=0.95).fit(train)
    near, far = rng.normal(size=(200, 4)), rng.normal(loc=8.0, size=(20, 4))
    assert novelty.is_novel(far).all()
    assert novelty.is_novel(near).mean() < 0.15
    assert novelty.score(far).min() > novelty.threshold_


def test_novelty_round_trips_without_pickles_and_needs_enough_prompts(tmp_path):
    novelty = FeatureNovelty().fit(np.arange(40, dtype=float).reshape(20, 2))
    novelty.save(tmp_path)
    loaded = FeatureNovelty.load(tmp_path)
    assert loaded is not None and loaded.threshold_ == novelty.threshold_
    np.testing.assert_allclose(loaded.score([[3.0, 4.0]]), novelty.score([[3.0, 4.0]]))
    assert FeatureNovelty.load(tmp_path / "nothing") is None
    with pytest.raises(InvalidRequestError, match="more than k=5"):
        FeatureNovelty().fit(np.ones((3, 2)))


@pytest.fixture(scope="module")
def bundle():
    return ProbeBundle(NODE_MENU, FeatureSet([TextStats()])).fit(synthetic_traces(gain_easy=0.0, gain_hard=0.3))


def test_a_bundle_keeps_its_novelty_and_untrusts_the_accuracy_it_cannot_read(bundle, tmp_path):
    bundle.save(tmp_path / "b")
    loaded = ProbeBundle.load(tmp_path / "b")
    X = loaded.features.transform([[{"role": "user", "content": "What is 345 + 678?"}],
                                   [{"role": "user", "content": WORD_PROBLEM}]])  # fmt: skip
    near, far = loaded.novelty(X[:1]), loaded.novelty(X[1:])
    assert near is not None and far is not None and not near["novel"] and far["novel"]
    assert far["score"] > far["threshold"] > 0
    pred = loaded.predict_features(X, np.array([20.0, 60.0]))
    prior = loaded.untrusted(pred)
    np.testing.assert_allclose(prior.accuracy[0], prior.accuracy[1])  # the same for any prompt
    np.testing.assert_allclose(prior.accuracy[0], loaded.calibration_.accuracy.mean(axis=0))
    np.testing.assert_allclose(prior.tokens, pred.tokens)  # costs stay predicted
    # Flagged queries only: the near prompt keeps its own prediction, the far one takes the prior.
    novel = loaded.novelty_.is_novel(X)
    some = loaded.untrusted(pred, novel)
    np.testing.assert_allclose(some.accuracy[0], pred.accuracy[0])
    np.testing.assert_allclose(some.accuracy[1], prior.accuracy[1])


def test_out_of_distribution_the_q90_tokens_rise_to_what_each_strategy_can_spend(bundle):
    X = bundle.features.transform([[{"role": "user", "content": "What is 345 + 678?"}],
                                   [{"role": "user", "content": WORD_PROBLEM}]])  # fmt: skip
    pred = bundle.predict_features(X, np.array([20.0, 60.0]))
    novel = bundle.novelty_.is_novel(X)
    # greedy: one sample at the cap and the prompt; best-of-4: four samples in one round.
    wary = bundle.untrusted(pred, novel, prompt_tokens=np.array([20.0, 60.0]), max_tokens=2000)
    np.testing.assert_allclose(wary.tokens_q90[1], [2000 + 60, 4 * 2000 + 60])
    np.testing.assert_allclose(wary.tokens_q90[0], pred.tokens_q90[0])  # in distribution: as predicted
    np.testing.assert_allclose(wary.tokens, pred.tokens)  # the means stay predicted
    assert (wary.seconds_q90[1] > pred.seconds_q90[1]).all()  # seconds are reserved in step
    # Without a call's cap, each strategy's traced one (24); a prediction already above it stays.
    traced = bundle.untrusted(pred, novel, prompt_tokens=np.array([20.0, 60.0]))
    np.testing.assert_allclose(traced.tokens_q90[1], np.maximum(pred.tokens_q90[1], [24 + 60, 4 * 24 + 60]))


def test_most_samples_reads_each_strategys_worst_case():
    from ttc_agent.probes.bundle import most_samples

    assert most_samples("greedy") == (1, 1)
    assert most_samples("best_of_n(8, select=majority, temperature=0.5)") == (8, 1)
    assert most_samples("adaptive_sc(max_n=16, batch=4, threshold=0.95)") == (16, 4)
    assert most_samples("adaptive_sc(max_n=10, batch=4, threshold=0.95)") == (10, 3)
    assert most_samples("deepconf(n=16, warmup=4, keep=0.9)") == (16, 2)
    assert most_samples("two_stage(k=4, more=12)") == (16, 2)
    assert most_samples("beam(width=2, expand=2, max_steps=6)") == (24, 6)


def test_a_budgeted_call_out_of_distribution_reserves_enough_to_finish(bundle):
    """In distribution a call reserves 1.5x its strategy's q90 tokens; a word problem the
    arithmetic-fitted probes predict short would have been cut there. Out of distribution it
    reserves what the strategy can spend, and its reply is not cut."""
    from langgraph.graph import START, MessagesState, StateGraph

    from ttc_agent.budgets import BudgetState, WorkflowBudget
    from ttc_agent.nodes import TTCContext, TTCNode

    class State(MessagesState, BudgetState):
        pass

    backend = ScriptedBackend(texts("Step one. " * 50 + "The answer is 72.", tokens=600))
    graph = StateGraph(State, context_schema=TTCContext)
    graph.add_node("solve", TTCNode(TTCEngine(backend, bundle)))
    graph.add_edge(START, "solve")
    settings = TTCContext(strategy="greedy", max_tokens_per_sample=800,
                          budget=WorkflowBudget(max_tokens=20_000, expected_calls=1))  # fmt: skip
    out = graph.compile().invoke({"messages": [HumanMessage(WORD_PROBLEM)]}, context=settings)
    meta = out["messages"][-1].response_metadata["ttc"]
    assert meta["ood"]["novel"] is True
    greedy = next(c for c in meta["candidates"] if c["strategy"] == "greedy")
    assert greedy["tokens_q90"] >= 800  # the whole cap, not the in-distribution spread
    assert meta["budget"]["reservation"]["tokens"] >= 800
    assert backend.calls[-1][1].max_tokens == 800 and meta["budget"]["charged"]["tokens"] > 600


def test_the_engine_records_a_prompt_out_of_distribution_and_decides_on_the_prior(bundle):
    engine = TTCEngine(ScriptedBackend(texts("The answer is 120.", tokens=20)), bundle)
    model = TTCChatModel(engine=engine)
    inside = model.invoke([HumanMessage("What is 345 + 678?")]).response_metadata["ttc"]
    outside = model.invoke([HumanMessage(WORD_PROBLEM)]).response_metadata["ttc"]
    assert inside["ood"]["novel"] is False and outside["ood"]["novel"] is True
    prior = bundle.calibration_.accuracy.mean(axis=0)
    assert [c["accuracy"] for c in outside["candidates"]] == pytest.approx(list(prior))
    assert [c["accuracy"] for c in inside["candidates"]] != pytest.approx(list(prior))


def test_the_shipped_bundles_flag_what_they_were_not_fitted_on():
    """The embedded model's bundle is fitted on arithmetic: a word problem is out of its
    distribution. The reference model's is fitted on GSM8K's and arithmetic's pools: both are in,
    a request of neither kind is out."""
    from ttc_agent.backends.models import REFERENCE_MODEL, TEST_MODEL
    from ttc_agent.demo import SHIPPED_BUNDLES

    def novel(folder, text):
        bundle = ProbeBundle.load(folder)
        return bundle.novelty(bundle.features.transform([[{"role": "user", "content": text}]]))["novel"]

    assert novel(SHIPPED_BUNDLES[TEST_MODEL], WORD_PROBLEM)
    assert not novel(SHIPPED_BUNDLES[TEST_MODEL], "What is 12 + 7?")
    reference = SHIPPED_BUNDLES[REFERENCE_MODEL]
    assert not novel(
        reference, WORD_PROBLEM + "\nSolve it step by step, then give the final answer as 'The answer is N.'"
    )
    assert not novel(reference, "What is 345 + 678?")
    assert novel(reference, "Write a haiku about autumn leaves.")


def test_serve_says_in_a_header_when_a_request_is_out_of_distribution(bundle):
    from fastapi.testclient import TestClient

    from ttc_agent.budgets import ReservationPool
    from ttc_agent.server import ChatService, create_app

    store = ReservationPool()
    engine = TTCEngine(ScriptedBackend(texts("The answer is 120.", tokens=20)), bundle, pool=store)
    client = TestClient(create_app(ChatService(engine, store, model_name="ttc")))
    far = client.post(
        "/v1/chat/completions", json={"model": "ttc", "messages": [{"role": "user", "content": WORD_PROBLEM}]}
    )
    near = client.post(
        "/v1/chat/completions", json={"model": "ttc", "messages": [{"role": "user", "content": "What is 345 + 678?"}]}
    )
    assert far.status_code == near.status_code == 200
    assert "threshold" in far.headers["x-ttc-out-of-distribution"] and far.json()["ttc"]["ood"]["novel"]
    assert "x-ttc-out-of-distribution" not in near.headers
    assert near.headers["x-ttc-max-tokens"] == near.headers["x-ttc-traced-max-tokens"] == "24"
