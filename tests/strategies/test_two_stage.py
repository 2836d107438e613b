"""Two-stage strategies: a first round, then a second only when the stage-2 decision pays for it."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import ScriptedBackend, texts
from langchain_core.messages import HumanMessage

from ttc_agent.budgets import WorkflowBudget
from ttc_agent.errors import InvalidRequestError
from ttc_agent.evaluation.pool_replay import PoolTooSmallError, fit_stage2, replay_pool, stage2_rows
from ttc_agent.nodes import TTCChatModel, TTCEngine
from ttc_agent.probes import FeatureSet, ProbeBundle, TextStats
from ttc_agent.probes.latency import LatencyModel
from ttc_agent.probes.stage2 import Stage2Policy, stage2_design, stage2_model
from ttc_agent.strategies import AgreementRule, StageOne, parse_strategy
from ttc_agent.strategies.menu import Menu
from ttc_agent.strategies.two_stage import SIGNALS, stage_signals

LATENCY = LatencyModel((1.0, 0.0, 0.1, 0.01, 0.0))


def agreeing(*answers: str, tokens: int = 10):
    return ScriptedBackend(texts(*(f"The answer is {a}." for a in answers), tokens=tokens))


# -- the strategy ------------------------------------------------------------------------------------


def test_the_default_rule_stops_when_the_first_stage_agrees_and_draws_the_cap_otherwise():
    backend = agreeing("4")
    outcome = parse_strategy("two_stage(k=2, more=6, temperature=0.3)").run("What is 2 + 2?", backend)
    assert (outcome.answer, outcome.stop_reason, outcome.cost.rounds) == ("4", "stopped", 1)
    assert outcome.stages["taken"] == 0 and outcome.stages["signals"]["agreement"] == 1.0
    assert [params.n for _, params in backend.calls] == [2]

    backend = agreeing("4", "5", "4")
    outcome = parse_strategy("two_stage(k=2, more=6, temperature=0.3)").run("What is 2 + 2?", backend)
    assert (outcome.stop_reason, outcome.cost.rounds, len(outcome.candidates)) == ("continued", 2, 8)
    assert [params.n for _, params in backend.calls] == [2, 6] and outcome.stages["options"] == [0, 2, 6]
    assert outcome.answer == "4"


def test_a_second_round_never_passes_the_calls_token_cap():
    backend = agreeing("4", "5", tokens=30)
    outcome = parse_strategy("two_stage(k=2, more=6)").run("q", backend, max_total_tokens=100)
    assert outcome.cost.total_tokens <= 100


@pytest.mark.parametrize(
    "spec,match",
    [
        ("two_stage(k=1, more=4)", "k"),
        ("two_stage(k=4, more=2)", "more"),
        ("two_stage(k=2, more=4, temperature=0)", "temperature"),
    ],
)
def test_bad_two_stage_specs_are_refused(spec, match):
    with pytest.raises(InvalidRequestError, match=match):
        parse_strategy(spec)


def test_stage_signals_read_agreement_margin_truncation_and_confidence():
    from ttc_agent.strategies import Candidate

    cands = [Candidate("", "4", None, 10, "stop", -0.2), Candidate("", "4", None, 20, "length", -0.6),
             Candidate("", "5", None, 10, "stop", -0.4), Candidate("", None, None, 20, "length", None)]  # fmt: skip
    s = dict(zip(SIGNALS, stage_signals(cands, max_tokens=20), strict=True))
    assert s["agreement"] == 0.5 and s["margin"] == 0.25 and s["distinct"] == 0.5 and s["no_answer"] == 0.25
    assert s["truncated"] == 0.5 and s["mean_confidence"] == pytest.approx(-0.4) and s["min_confidence"] == -0.6
    assert s["mean_length"] == pytest.approx(0.75)


# -- the priced stage-2 decision ------------------------------------------------------------------


def fitted_model():
    """A stage-2 model on synthetic rows: agreeing first stages are right already; split ones
    become right only when more samples are drawn."""
    rng = np.random.default_rng(0)
    X, y = [], []
    for _ in range(300):
        agree = rng.random() < 0.5
        signals = np.array([1.0 if agree else 0.5, 0.5 if agree else 0.0, 0.25, 0, 0, -0.3, -0.5, 0.3])
        X.append(stage2_design(signals, (0, 4, 12)))
        y += [int(agree), int(agree or rng.random() < 0.5), int(agree or rng.random() < 0.9)]
    return stage2_model().fit(np.vstack(X), np.array(y))


def stage(agreement: float, seconds: float = 10.0) -> StageOne:
    signals = np.array([agreement, agreement - 0.5, 0.25, 0, 0, -0.3, -0.5, 0.3])
    return StageOne(signals, (0, 4, 12), 4, 50, 100.0, seconds)


def test_the_priced_decision_continues_only_where_it_pays():
    model = fitted_model()
    cheap = Stage2Policy(model, lambda_tokens=3e-5)
    assert cheap.choose(stage(1.0)) == 0  # agreeing: more samples add nothing worth even a cheap token
    assert cheap.choose(stage(0.5)) == 2  # split, cheap compute: draw the cap
    assert Stage2Policy(model, lambda_tokens=1e-3).choose(stage(0.5)) == 0  # 1,200 tokens cost 1.2
    assert Stage2Policy(model, lambda_seconds=0.1).choose(stage(0.5)) == 0  # a 10 s round costs 1.0
    acc, tokens, seconds = Stage2Policy(model).predict(stage(0.5))
    assert list(tokens) == [0, 450, 1250] and list(seconds) == [0, 10, 10] and acc[2] > acc[0]
    # With a latency model, a wider round takes longer than the first stage's.
    _, _, scaled = Stage2Policy(model, latency=LATENCY).predict(stage(0.5))
    assert scaled[1] == pytest.approx(10.0) and scaled[2] > scaled[1]


# -- pools: replay, training rows, the bundle and the engine --------------------------------------------


def pool(problems: int = 12):
    """Pools where questions with even ids have agreeing samples (and are right), odd ones a first
    stage voting wrong that more samples put right."""
    records = []
    for i in range(problems):
        even = i % 2 == 0
        answers = ["4"] * 16 if even else ["5", "5", "4", "5"] + ["4"] * 12
        samples = [{"answer": a, "correct": a == "4", "tokens": 10,
                    "finish": "stop", "confidence": -0.3, "mean_logprob": -0.3, "window_means": [-0.3]}
                   for a in answers]  # fmt: skip
        base = {"schema": "pool-1", "dataset": "test", "problem_id": f"q{i}", "level": 0, "scope": "all",
                "messages": [{"role": "user", "content": f"What is 2 + 2? ({i})"}], "gold": "4", "max_tokens": 64,
                "prompt_tokens": 20}  # fmt: skip
        records += [
            {**base, "temperature": 0.0, "samples": samples[:1]},
            {**base, "temperature": 0.7, "samples": samples},
        ]
    return records


def test_replay_lets_the_continuation_decide_and_pays_for_what_it_drew():
    (stopped,) = [
        r for r in replay_pool(pool(2), ["two_stage(k=4, more=12)"], LATENCY, max_tokens=64) if r["problem_id"] == "q0"
    ]
    assert stopped["stop_reason"] == "stopped" and stopped["completion_tokens"] == 40 and stopped["rounds"] == 1
    odd = replay_pool(pool(2), ["two_stage(k=4, more=12)"], LATENCY, max_tokens=64)[1]
    assert odd["stop_reason"] == "continued" and odd["completion_tokens"] == 160 and odd["rounds"] == 2
    never = replay_pool(pool(2), ["two_stage(k=4, more=12)"], LATENCY, AgreementRule(threshold=0.0), max_tokens=64)
    assert all(r["stop_reason"] == "stopped" for r in never)


def test_stage2_rows_label_each_option_and_need_enough_samples():
    strategy = parse_strategy("two_stage(k=4, more=12)", max_tokens=64)
    X, y, ids = stage2_rows(pool(4), strategy, LATENCY)
    assert X.shape[0] == 12 and ids[:3] == ["q0"] * 3
    assert list(y[:3]) == [1, 1, 1]  # q0 agrees and is right
    with pytest.raises(PoolTooSmallError, match="needs 20 samples at temperature 0.7.*at most 16"):
        stage2_rows([r for r in pool(2)], parse_strategy("two_stage(k=4, more=16)", max_tokens=64), LATENCY)


MENU = Menu(("greedy", "two_stage(k=4, more=12)"), {"max_tokens": 64})


def bundle_with_stage2(tmp_path):
    records = []
    for i in range(12):
        for spec in MENU.specs:
            records.append({"problem_id": f"q{i}", "strategy": spec, "repeat": 0, "correct": i % 3 != 0,
                            "messages": [{"role": "user", "content": f"What is 2 + 2? ({i})"}], "prompt_tokens": 20,
                            "completion_tokens": 40, "total_tokens": 60, "rounds": 1, "seconds": 0.5, "candidates": []})  # fmt: skip
    bundle = ProbeBundle(MENU, FeatureSet([TextStats()])).fit(records)
    assert fit_stage2(bundle, pool(12), LATENCY) == ["two_stage(k=4, more=12)"]
    bundle.save(tmp_path / "b")
    return ProbeBundle.load(tmp_path / "b")


def test_the_bundle_keeps_its_stage2_model_and_prices_it_per_call(tmp_path):
    bundle = bundle_with_stage2(tmp_path)
    policy = bundle.continuation("two_stage(k=4, more=12)", 2e-3, 0.5)
    assert isinstance(policy, Stage2Policy) and (policy.lambda_tokens, policy.lambda_seconds) == (2e-3, 0.5)
    assert bundle.continuation("greedy", 0.0, 0.0) is None


def test_every_face_runs_the_learned_second_stage_and_records_it(tmp_path):
    bundle = bundle_with_stage2(tmp_path)
    backend = agreeing("4", "5")  # a split first stage
    engine = TTCEngine(backend, bundle)
    model = TTCChatModel(engine=engine)
    free = model.invoke([HumanMessage("What is 2 + 2? (3)")], ttc={"strategy": "two_stage(k=4, more=12)"})
    record = free.response_metadata["ttc"]
    assert record["ood"]["novel"] is False  # a prompt like the training ones: the learned decision runs
    assert record["stages"]["taken"] in (4, 12) and len(backend.calls) == 2  # free compute: it continued
    backend.calls.clear()
    dear = model.invoke(
        [HumanMessage("What is 2 + 2? (3)")], ttc={"strategy": "two_stage(k=4, more=12)", "lambda_tokens": 1.0}
    )
    assert dear.response_metadata["ttc"]["stages"]["taken"] == 0 and len(backend.calls) == 1


def test_under_a_budget_a_two_stage_call_never_overruns_its_reservation(tmp_path):
    from langgraph.graph import START, MessagesState, StateGraph

    from ttc_agent.budgets import BudgetState
    from ttc_agent.nodes import TTCContext, TTCNode

    class State(MessagesState, BudgetState):
        pass

    engine = TTCEngine(agreeing("4", "5", tokens=30), bundle_with_stage2(tmp_path))
    g = StateGraph(State, context_schema=TTCContext)
    g.add_node("solve", TTCNode(engine))
    g.add_edge(START, "solve")
    app = g.compile()
    budget = WorkflowBudget(max_tokens=500, on_exhausted="end", scope="thread")
    state = {"messages": [HumanMessage("What is 2 + 2?")]}
    for _ in range(3):
        state = app.invoke(state, context=TTCContext(budget=budget, strategy="two_stage(k=4, more=12)"))
    assert state["ttc_ledger"].tokens <= 500


@pytest.mark.slow
def test_a_two_stage_strategy_on_the_embedded_model(tf_backend):
    outcome = parse_strategy("two_stage(k=2, more=4, max_tokens=24)").run("What is 23 + 19?", tf_backend)
    assert outcome.stop_reason in ("stopped", "continued") and outcome.stages is not None
    assert len(outcome.candidates) == 2 + outcome.stages["taken"] and outcome.cost.rounds == 1 + (
        outcome.stages["taken"] > 0
    )
    assert all(c.confidence is not None for c in outcome.candidates)  # stage 1 asks for logprobs


def test_the_learned_second_stage_runs_for_a_two_stage_strategy_at_another_temperature_than_the_menus(tmp_path):
    """The stage-2 model is found by the menu's spec: a strategy at 0.7 on a menu sampling at 0.5
    by default runs its learned decision, not the default rule."""
    menu = Menu(("greedy", "two_stage(k=4, more=12, temperature=0.7)"), {"max_tokens": 64, "temperature": 0.5})
    spec = menu.specs[1]
    records = [{"problem_id": f"q{i}", "strategy": s, "repeat": 0, "correct": i % 3 != 0,
                "messages": [{"role": "user", "content": f"What is 2 + 2? ({i})"}], "prompt_tokens": 20,
                "completion_tokens": 40, "total_tokens": 60, "rounds": 1, "seconds": 0.5, "candidates": []}
               for i in range(12) for s in menu.specs]  # fmt: skip
    bundle = ProbeBundle(menu, FeatureSet([TextStats()])).fit(records)
    assert fit_stage2(bundle, pool(12), LATENCY) == [spec]
    backend = agreeing("4", "5")  # a split first stage: the default rule would draw the cap
    model = TTCChatModel(engine=TTCEngine(backend, bundle))
    dear = model.invoke([HumanMessage("What is 2 + 2? (3)")], ttc={"strategy": spec, "lambda_tokens": 1.0})
    assert dear.response_metadata["ttc"]["stages"]["taken"] == 0 and len(backend.calls) == 1
