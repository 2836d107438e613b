"""Workflow budgets: limits, ledger reducer, managers, reservations and exhaustion in real graphs.

The backend is scripted (10 prompt tokens a request, 5 tokens a sample); the probes are trained
on synthetic traces (greedy predicted ~50-70 tokens, best-of-4 ~80-160), so budgets of a few
hundred tokens bind after a few calls.
"""

import math
import operator
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

import pytest
from fakes import ScriptedBackend, bundle_for, texts
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command, Send

from ttc_agent.budgets import (
    BudgetError,
    BudgetExhaustedError,
    BudgetState,
    CallHistory,
    EqualSplit,
    Ledger,
    Paced,
    ReservationPool,
    WorkflowBudget,
    budget_exhausted,
)
from ttc_agent.budgets.ledger import charge, merge_ledgers
from ttc_agent.budgets.managers import balance_for
from ttc_agent.nodes import TTCContext, TTCEngine, TTCNode

BUNDLE = bundle_for(None)
Q = [HumanMessage("What is 345 + 678?")]


class State(MessagesState, BudgetState):
    rounds: int


def loop_graph(node, calls=6, checkpointer=None):
    """A graph that calls the node ``calls`` times in a row, stopping early when the budget ends it."""

    def solve(state, config):
        update = node.respond(Q, state, config).update
        return {**update, "rounds": state.get("rounds", 0) + 1}

    def again(state):
        return END if budget_exhausted(state) or state["rounds"] >= calls else "solve"

    g = StateGraph(State, context_schema=TTCContext)
    g.add_node("solve", solve)
    g.add_edge(START, "solve")
    g.add_conditional_edges("solve", again, ["solve", END])
    return g.compile(checkpointer=checkpointer)


def start(**kw):
    return {"messages": [], "rounds": 0, **kw}


def spent_tokens(backend, sample_tokens=5):
    """Tokens the scripted backend really produced and read (its own count)."""
    total = 0
    for batch, params in backend.calls:
        total += len(batch) * (10 + params.n * min(sample_tokens, params.max_tokens))
    return total


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({}, "needs max_tokens, max_seconds or both"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": -5}, "max_tokens"),
        ({"max_tokens": 2.5}, "max_tokens"),
        ({"max_seconds": math.nan}, "max_seconds"),
        ({"max_seconds": math.inf}, "max_seconds"),
        ({"max_tokens": 100, "scope": "session"}, "scope"),
        ({"max_tokens": 100, "on_exhausted": "retry"}, "on_exhausted"),
        ({"max_tokens": 100, "expected_calls": 0}, "expected_calls"),
        ({"max_tokens": 100, "count": ("prompt", "images")}, "count"),
        ({"max_tokens": 100, "quantile": 0.3}, "quantile"),
        ({"max_tokens": 100, "quantile": 1}, "quantile"),
        ({"max_tokens": 100, "quantile": math.nan}, "quantile"),
    ],
)
def test_bad_budgets_are_refused_at_construction(kwargs, match):
    with pytest.raises(BudgetError, match=match):
        WorkflowBudget(**kwargs)


def test_bad_manager_and_budget_mapping_are_refused():
    with pytest.raises(BudgetError, match="unknown budget manager 'greedy'"):
        TTCNode(TTCEngine(ScriptedBackend(texts("= 5")), BUNDLE, manager="greedy"))
    with pytest.raises(BudgetError, match="max_token"):
        WorkflowBudget.coerce({"max_token": 5})
    with pytest.raises(BudgetError, match="step"):
        Paced(step=-1)


def test_a_manager_returning_negative_prices_is_refused_before_generation():
    class Broken(EqualSplit):
        def allowance(self, balance, predictions, calibration=None):
            from ttc_agent.budgets.managers import _limits

            return type(super().allowance(balance, predictions))(_limits(-1.0, 0.0, 100, None))

    backend = ScriptedBackend(texts("= 5"))
    node = TTCNode(TTCEngine(backend, BUNDLE, budget=WorkflowBudget(max_tokens=500), manager=Broken()))
    with pytest.raises(BudgetError, match="lambda_tokens must be a finite number >= 0, got -1"):
        loop_graph(node, calls=1).invoke(start())
    assert backend.calls == []


# -- ledger ------------------------------------------------------------------------------------


def test_ledger_increments_add_and_a_new_run_restarts_run_totals():
    a = charge("b1", "run1", "solve", tokens=30, seconds=1.0)
    led = merge_ledgers(merge_ledgers(None, a), charge("b1", "run1", "check", tokens=20, seconds=0.5))
    assert (led.tokens, led.run_tokens, led.calls, led.node_calls) == (50, 50, 2, {"solve": 1, "check": 1})
    led = merge_ledgers(led, charge("b1", "run2", "solve", tokens=7))
    assert (led.tokens, led.run_tokens, led.run, led.node_calls) == (57, 7, "run2", {"solve": 1})
    assert led.spent("thread", "run2")[0] == 57 and led.spent("run", "run2")[0] == 7
    with pytest.raises(BudgetError, match="another budget|kept under budget"):
        merge_ledgers(led, charge("b2", "run2", "solve", tokens=1))


# -- managers ----------------------------------------------------------------------------------


def preds():
    X = BUNDLE.features.transform([Q[0].content])
    return BUNDLE.predict_features(X, [40])


def test_equal_split_gives_each_call_its_share_and_keeps_the_reserve():
    budget = WorkflowBudget(max_tokens=1000)
    p = preds()
    allowance = EqualSplit().allowance(balance_for(budget, 0, 0.0, (0, 0.0), 0, 4), p)
    assert allowance.limits.max_call_tokens == pytest.approx(250)
    cheapest = float(p.tokens_q90[0].min())
    assert allowance.reserve_tokens == pytest.approx(3 * cheapest)
    # Little left: the reserve leaves this call only what the cheapest strategy needs.
    tight = EqualSplit().allowance(balance_for(budget, 1000 - 2 * cheapest, 0.0, (0, 0.0), 2, 3), p)
    assert tight.limits.max_call_tokens == pytest.approx(cheapest)


def test_the_reserve_and_feasibility_follow_the_budgets_quantile():
    p = preds()
    q90 = EqualSplit().allowance(balance_for(WorkflowBudget(max_tokens=1000), 0, 0.0, (0, 0.0), 0, 4), p)
    median = WorkflowBudget(max_tokens=1000, quantile=0.5)
    q50 = EqualSplit().allowance(balance_for(median, 0, 0.0, (0, 0.0), 0, 4), p)
    assert q90.reserve_tokens == pytest.approx(3 * float(p.tokens_q90[0].min()))
    assert q50.reserve_tokens == pytest.approx(3 * float(p.tokens[0].min()))
    assert q50.reserve_tokens < q90.reserve_tokens
    assert q50.limits.quantile == 0.5 and median.digest == WorkflowBudget(max_tokens=1000).digest


@pytest.mark.parametrize("quantile", [0.9, 0.5])
def test_a_budget_between_the_median_and_the_q90_runs_only_at_the_lower_quantile(quantile):
    p = preds()
    tokens = int(p.tokens[0].min()) + 1  # above greedy's median, below its q90
    assert p.tokens[0].min() < tokens < p.tokens_q90[0].min()
    backend = ScriptedBackend(texts("= 5"))
    budget = WorkflowBudget(max_tokens=tokens, expected_calls=1, quantile=quantile)
    out = loop_graph(TTCNode(TTCEngine(backend, BUNDLE, budget=budget)), calls=1).invoke(start())
    if quantile == 0.9:
        assert out["ttc_ledger"].exhausted and backend.calls == []
    else:
        assert not out["ttc_ledger"].exhausted and 0 < out["ttc_ledger"].tokens == spent_tokens(backend) <= tokens


def test_paced_prices_rise_when_spending_runs_ahead_and_fall_when_behind():
    budget = WorkflowBudget(max_tokens=1000)
    p, pacer = preds(), Paced()
    start_price = pacer.allowance(balance_for(budget, 0, 0.0, (0, 0.0), 0, 4), p).limits.lambda_tokens
    assert start_price > 0
    ahead = pacer.allowance(balance_for(budget, 600, 0.0, (0, 0.0), 1, 3, (start_price, None)), p)
    behind = pacer.allowance(balance_for(budget, 50, 0.0, (0, 0.0), 1, 3, (start_price, None)), p)
    assert ahead.limits.lambda_tokens > start_price > behind.limits.lambda_tokens


def test_call_history_learns_calls_per_node(tmp_path):
    history = CallHistory(tmp_path / "calls.json", default=3)
    assert history.expected_total("r0", {}) == 3
    for r in range(5):
        history.observe(f"r{r}", {"plan": 1, "solve": 4})
    assert history.expected_total("new", {"plan": 1}) == 5
    assert CallHistory(tmp_path / "calls.json").expected_total("new", {}) == 5, "kept across processes"


# -- in a graph --------------------------------------------------------------------------------


@pytest.mark.parametrize("manager", ["equal", "paced"])
def test_the_ledger_matches_the_backend_and_the_budget_is_never_overrun(manager):
    backend = ScriptedBackend(texts("= 5"))
    budget = WorkflowBudget(max_tokens=260, expected_calls=6)
    out = loop_graph(TTCNode(TTCEngine(backend, BUNDLE, budget=budget, manager=manager))).invoke(start())
    ledger = out["ttc_ledger"]
    assert ledger.tokens == spent_tokens(backend) <= 260
    assert ledger.calls == len(backend.calls) >= 2
    if ledger.exhausted:
        assert out["messages"][-1].content.startswith("Stopped: the workflow's tokens budget")


def test_the_decision_record_carries_the_budget():
    node = TTCNode(
        TTCEngine(ScriptedBackend(texts("= 5")), BUNDLE, budget=WorkflowBudget(max_tokens=400, expected_calls=2))
    )
    out = loop_graph(node, calls=1).invoke(start())
    b = out["messages"][-1].response_metadata["ttc"]["budget"]
    assert b["before"]["tokens_left"] == 400 and b["after"]["tokens_left"] == 400 - b["charged"]["tokens"]
    assert b["reservation"]["tokens"] <= 400 and b["manager"] == "paced"


def test_on_exhausted_error_raises_a_typed_error():
    node = TTCNode(
        TTCEngine(ScriptedBackend(texts("= 5")), BUNDLE, budget=WorkflowBudget(max_tokens=20, on_exhausted="error"))
    )
    with pytest.raises(BudgetExhaustedError, match="tokens budget") as info:
        loop_graph(node).invoke(start())
    assert info.value.exhausted.limit == "tokens"


def test_on_exhausted_ask_interrupts_and_resumes_with_more_budget():
    backend = ScriptedBackend(texts("= 5"))
    node = TTCNode(
        TTCEngine(backend, BUNDLE, budget=WorkflowBudget(max_tokens=100, expected_calls=3, on_exhausted="ask"))
    )
    app = loop_graph(node, calls=3, checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "ask"}}
    out = app.invoke(start(), cfg)
    assert out["__interrupt__"][0].value["ttc_budget_exhausted"]["limit"] == "tokens"
    calls_before = len(backend.calls)
    out = app.invoke(Command(resume={"tokens": 400}), cfg)
    assert len(backend.calls) > calls_before and out["rounds"] == 3
    ledger = out["ttc_ledger"]
    assert ledger.run_granted_tokens == 400 and ledger.run_tokens <= 100 + 400
    assert ledger.run_tokens == spent_tokens(backend)
    # Declining ends the run cleanly.
    app2 = loop_graph(node, calls=3, checkpointer=InMemorySaver())
    app2.invoke(start(), cfg)
    out = app2.invoke(Command(resume=False), cfg)
    assert budget_exhausted(out) and "Stopped" in out["messages"][-1].content


def test_run_scope_resets_per_invocation_and_thread_scope_accumulates():
    for scope in ("run", "thread"):
        backend = ScriptedBackend(texts("= 5"))
        node = TTCNode(TTCEngine(backend, BUNDLE, budget=WorkflowBudget(max_tokens=200, expected_calls=2, scope=scope)))
        app = loop_graph(node, calls=2, checkpointer=InMemorySaver())
        cfg = {"configurable": {"thread_id": scope}}
        first = app.invoke(start(), cfg)["ttc_ledger"]
        out = app.invoke({"rounds": 0}, cfg)
        second = out["ttc_ledger"]
        assert second.tokens == spent_tokens(backend), "thread totals always accumulate"
        before = out["messages"][2].response_metadata["ttc"]["budget"]["before"]  # invocation 2, call 1
        if scope == "run":
            assert second.run != first.run and second.run_tokens == second.tokens - first.tokens
            assert before["tokens_left"] == 200 and before["calls_done"] == 0
        else:
            assert before["tokens_left"] == 200 - first.tokens and before["calls_done"] == 2


def test_a_ledger_under_another_budget_is_refused_before_generation():
    backend = ScriptedBackend(texts("= 5"))
    node = TTCNode(TTCEngine(backend, BUNDLE, budget=WorkflowBudget(max_tokens=300, scope="thread")))
    app = loop_graph(node, calls=1, checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "t"}}
    app.invoke(start(), cfg)
    calls = len(backend.calls)
    with pytest.raises(BudgetError, match="another budget"):
        app.invoke({"rounds": 0}, cfg, context=TTCContext(budget=WorkflowBudget(max_tokens=900, scope="thread")))
    assert len(backend.calls) == calls


class FanState(BudgetState):
    branches: int
    answers: Annotated[list, operator.add]


def test_parallel_branches_that_together_would_overrun_share_the_budget():
    """Each branch alone would spend over half the budget; the reservations keep both within it."""

    class Slow(ScriptedBackend):  # the branches overlap in time
        def generate(self, prompts, params=None, **kwargs):
            time.sleep(0.3)
            return super().generate(prompts, params, **kwargs)

    backend = Slow(texts("= 5", tokens=200))  # samples run to their max_tokens
    budget = WorkflowBudget(max_tokens=200, expected_calls=1)
    node = TTCNode(TTCEngine(backend, BUNDLE, budget=budget, manager="equal"))

    def fan(state):
        return [Send("branch", {"ttc_ledger": state.get("ttc_ledger")}) for _ in range(state["branches"])]

    def branch(state, config):
        reply = node.respond(Q, state, config)
        return {"answers": [reply.message.content], "ttc_ledger": reply.update["ttc_ledger"]}

    g = StateGraph(FanState)
    g.add_node("branch", branch)
    g.add_conditional_edges(START, fan, ["branch"])
    g.add_edge("branch", END)
    out = g.compile().invoke({"branches": 2, "answers": []})
    assert len(out["answers"]) == 2
    assert out["ttc_ledger"].tokens == spent_tokens(backend, 200) <= 200
    assert any(a.startswith("Stopped") for a in out["answers"])
    alone = ScriptedBackend(texts("= 5", tokens=200))
    TTCNode(TTCEngine(alone, BUNDLE, budget=budget, manager="equal", pool=ReservationPool())).respond(Q, {})
    assert 2 * spent_tokens(alone, 200) > 200, "one branch alone would have spent more than half"


def test_eight_threads_share_one_budget():
    backend = ScriptedBackend(texts("= 5", tokens=200))  # every call spends at least 10 + 24 tokens
    budget = WorkflowBudget(max_tokens=600, expected_calls=3, shared_by="team")
    node = TTCNode(TTCEngine(backend, BUNDLE, budget=budget, pool=ReservationPool()))
    app = loop_graph(node, calls=3, checkpointer=InMemorySaver())

    def run(i):
        return app.invoke(start(), {"configurable": {"thread_id": f"t{i}"}})

    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(run, range(8)))
    total = sum(o["ttc_ledger"].tokens for o in outs)
    assert total == spent_tokens(backend, 200) <= 600
    assert any(budget_exhausted(o) for o in outs), "600 tokens cannot pay for 24 calls of 34 or more"


def test_a_failed_call_is_charged():
    class Failing(ScriptedBackend):
        def generate(self, prompts, params=None, **kwargs):
            raise RuntimeError("backend down")

    pool = ReservationPool()
    budget = WorkflowBudget(max_tokens=300, shared_by="f")
    node = TTCNode(TTCEngine(Failing(texts("= 5")), BUNDLE, budget=budget, pool=pool))
    with pytest.raises(RuntimeError):
        node.respond(Q, {})
    spent, _, in_flight = pool.available(("shared", "f", budget.digest), 0, 0.0)
    assert spent > 0 and in_flight == 0


def test_ledger_types_pass_strict_msgpack(monkeypatch):
    """The ledger is declared in the state schema, so a strict checkpoint serializer allows it."""
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    led = merge_ledgers(Ledger(), charge("b", "r", "solve", tokens=3, seconds=0.1, lambdas=(0.01, None)))
    serde = JsonPlusSerializer(allowed_msgpack_modules=[("ttc_agent.budgets.ledger", "Ledger")])
    assert serde.loads_typed(serde.dumps_typed(led)) == led


async def test_async_graph_ledger_survives_reopening_an_async_sqlite_checkpoint(tmp_path):
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    backend = ScriptedBackend(texts("= 5"))
    node = TTCNode(TTCEngine(backend, BUNDLE, budget=WorkflowBudget(max_tokens=1000, scope="thread", expected_calls=4)))

    async def solve(state, config):
        return {**(await node.arespond(Q, state, config)).update, "rounds": state.get("rounds", 0) + 1}

    g = StateGraph(State)
    g.add_node("solve", solve)
    g.add_edge(START, "solve")
    cfg = {"configurable": {"thread_id": "async"}}
    db = str(tmp_path / "async.sqlite")
    async with AsyncSqliteSaver.from_conn_string(db) as saver:
        first = (await g.compile(checkpointer=saver).ainvoke(start(), cfg))["ttc_ledger"]
    async with AsyncSqliteSaver.from_conn_string(db) as saver:  # a fresh connection: read back from disk
        app = g.compile(checkpointer=saver)
        assert (await app.aget_state(cfg)).values["ttc_ledger"] == first
        second = (await app.ainvoke({"rounds": 0}, cfg))["ttc_ledger"]
    assert first.tokens > 0 and second.tokens == spent_tokens(backend) and second.calls == 2


def test_report_shows_budget_left_and_the_stop_and_draws_the_burn_down(tmp_path):
    from typer.testing import CliRunner

    from ttc_agent.cli import app
    from ttc_agent.report import burn_down, read_decisions

    trace = tmp_path / "run.jsonl"
    node = TTCNode(
        TTCEngine(
            ScriptedBackend(texts("= 5")), BUNDLE, trace=trace, budget=WorkflowBudget(max_tokens=100, expected_calls=3)
        )
    )
    out = loop_graph(node, calls=5).invoke(start())
    assert budget_exhausted(out)
    records = read_decisions(trace)
    assert records[-1]["choice"] is None and records[-1]["exhausted"]["limit"] == "tokens"
    left, plan = burn_down(records, "tokens")
    assert left == sorted(left, reverse=True) and left[0] == 100 - records[0]["budget"]["charged"]["tokens"]
    assert plan[0] == pytest.approx(100 * 2 / 3)
    result = CliRunner().invoke(app, ["report", str(trace), "--plot", str(tmp_path / "run.png")])
    assert result.exit_code == 0, result.output
    assert "stopped: budget" in result.output and "tok" in result.output
    assert (tmp_path / "run.png").stat().st_size > 1000


def test_a_graph_without_the_ledger_channel_is_told_to_add_it():
    node = TTCNode(
        TTCEngine(ScriptedBackend(texts("= 5")), BUNDLE, budget=WorkflowBudget(max_tokens=1000, expected_calls=3))
    )

    def solve(state, config):
        return node.respond(state["messages"], state, config).update

    g = StateGraph(MessagesState)  # no BudgetState: LangGraph would drop the ledger silently
    g.add_node("solve", solve)
    g.add_edge(START, "solve")
    g.add_edge("solve", "again")
    g.add_node("again", solve)
    with pytest.raises(BudgetError, match="add ttc_agent.budgets.BudgetState"):
        g.compile().invoke({"messages": Q})


def test_each_invocation_without_a_thread_is_a_run_of_its_own():
    backend = ScriptedBackend(texts("= 5"))
    node = TTCNode(
        TTCEngine(backend, BUNDLE, budget=WorkflowBudget(max_tokens=100, expected_calls=2), pool=ReservationPool())
    )
    app = loop_graph(node, calls=2)
    runs = [app.invoke(start())["ttc_ledger"] for _ in range(4)]
    assert len({r.run for r in runs}) == 4, "no checkpointer, no thread: four separate runs"
    assert all(r.calls == 2 and not r.exhausted for r in runs), "each run had the whole budget"
