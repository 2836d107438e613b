"""The workflow simulator: managers never overrun, the oracle bounds everyone, bad input is refused."""

import json
from dataclasses import replace

import pytest
from fakes import MENU, synthetic_traces
from typer.testing import CliRunner

from ttc_agent.budgets import BudgetError, WorkflowBudget
from ttc_agent.cli import app
from ttc_agent.evaluation.simulate import draw_world, simulate
from ttc_agent.probes import FeatureSet, ProbeBundle, TextStats, TraceTable

RECORDS = synthetic_traces(n=160, gain_easy=0.0, gain_hard=0.4)


def held_out():
    table = TraceTable.from_records(RECORDS, MENU.specs)
    train = [i for i in range(len(table.ids)) if i % 2 == 0]
    test = [i for i in range(len(table.ids)) if i % 2 == 1 or i % 4 == 0]
    bundle = ProbeBundle(MENU, FeatureSet([TextStats()])).fit(
        [r for r in RECORDS if r["problem_id"] in {table.ids[i] for i in train}]
    )
    held = table.subset(sorted(set(test)))
    return bundle, held, bundle.predict(held.prompts, held.prompt_tokens)


def test_managers_never_overrun_and_the_oracle_is_a_ceiling():
    bundle, table, pred = held_out()
    budgets = [WorkflowBudget(max_tokens=t) for t in (250, 400, 700)]
    rows = simulate(
        table, pred, budgets, steps=3, workflows=400, statics=list(MENU.specs), calibration=bundle.calibration_,
        progress=False,
    )  # fmt: skip
    by = {(r["allocation"], r["max_tokens"]): r for r in rows}
    for t in (250, 400, 700):
        for name in ("equal", "paced", *(f"static:{s}" for s in MENU.specs)):
            assert by[(name, t)]["violations"] == 0 and by[(name, t)]["tokens"] <= t
            assert by[(name, t)]["success"] <= by[("oracle", t)]["success"] + 1e-9
    # The spend ceiling keeps the same guarantees and spends at least what the managers spend.
    for t in (250, 400, 700):
        ceiling = by[("spend_ceiling", t)]
        assert ceiling["violations"] == 0 and ceiling["tokens"] <= t
        assert ceiling["tokens"] >= max(by[("paced", t)]["tokens"], by[("equal", t)]["tokens"]) - 1e-9
    # A lower feasibility quantile keeps back less: the ceiling spends more, still within budget.
    loose = simulate(
        table, pred, [WorkflowBudget(max_tokens=400, quantile=0.5)], steps=3, workflows=400, managers=("paced",),
        calibration=bundle.calibration_, progress=False,
    )  # fmt: skip
    ceiling = next(r for r in loose if r["allocation"] == "spend_ceiling")
    assert ceiling["violations"] == 0 and ceiling["tokens"] > by[("spend_ceiling", 400)]["tokens"]
    # More budget never hurts the managers much, and lets them spend more.
    assert by[("paced", 700)]["success"] >= by[("paced", 250)]["success"] - 0.02
    assert by[("paced", 700)]["tokens"] > by[("paced", 250)]["tokens"]


def test_partial_success_share_and_bad_input():
    bundle, table, pred = held_out()
    rows = simulate(
        table, pred, [WorkflowBudget(max_tokens=400)], steps=4, workflows=200, success_share=0.5, progress=False
    )
    strict = simulate(table, pred, [WorkflowBudget(max_tokens=400)], steps=4, workflows=200, progress=False)
    assert rows[0]["success"] >= strict[0]["success"]
    with pytest.raises(BudgetError, match="steps"):
        draw_world(table, 10, 0)
    with pytest.raises(BudgetError, match="success_share"):
        simulate(table, pred, [WorkflowBudget(max_tokens=400)], success_share=0, progress=False)


def test_simulate_command_writes_json_and_plots(tmp_path):
    bundle, table, pred = held_out()
    bundle.save(tmp_path / "probes")
    traces = tmp_path / "traces"
    traces.mkdir()
    (traces / "traces.jsonl").write_text("".join(json.dumps({**r, "schema": 1}) + "\n" for r in RECORDS))
    result = CliRunner().invoke(
        app,
        ["simulate", "--traces", str(traces), "--probes", str(tmp_path / "probes"), "--budget-tokens", "300,600",
         "--workflows", "200", "--steps", "3", "--static", "greedy", "--out", str(tmp_path / "sim")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "sim" / "simulate.json").read_text())
    assert {r["allocation"] for r in data["rows"]} == {
        "equal",
        "paced",
        "static:greedy",
        "adaptive",
        "oracle",
        "spend_ceiling",
    }
    assert (tmp_path / "sim" / "success-vs-budget.png").stat().st_size > 1000
    bad = CliRunner().invoke(app, ["simulate", "--traces", str(traces), "--probes", str(tmp_path / "probes")])
    assert bad.exit_code != 0 and "--budget-tokens" in bad.output
    bad = CliRunner().invoke(
        app,
        ["simulate", "--traces", str(traces), "--probes", str(tmp_path / "probes"), "--budget-tokens", "300",
         "--quantile", "0.3"],
    )  # fmt: skip
    assert bad.exit_code != 0 and "quantile must be a finite number in [0.5, 1), got 0.3" in bad.output


def test_the_simulator_runs_the_shipped_gate_rules(monkeypatch):
    """A deliberate change to the gate's rules (its reservation headroom, its price rule) changes
    what the simulator computes: it calls them rather than a copy."""
    from ttc_agent.budgets import gate

    bundle, table, pred = held_out()

    def paced():
        rows = simulate(table, pred, [WorkflowBudget(max_tokens=400)], steps=3, workflows=200, managers=("paced",),
                        calibration=bundle.calibration_, progress=False)  # fmt: skip
        return next(r for r in rows if r["allocation"] == "paced")

    shipped = paced()
    monkeypatch.setattr(gate, "HEADROOM", (0.3, 0.3))  # reservations of a third of q90: calls cut short
    assert paced()["tokens"] < shipped["tokens"]
    monkeypatch.undo()
    dearer = gate.within_budget

    def pricier(manager, user, quantile):
        return dearer(manager, replace(user, lambda_tokens=1.0), quantile)

    monkeypatch.setattr(gate, "within_budget", pricier)  # a rule that makes every token dear
    assert paced()["tokens"] < shipped["tokens"]


def test_a_users_price_is_a_floor_under_a_budget_and_caps_take_the_tighter():
    from ttc_agent.budgets.gate import within_budget
    from ttc_agent.policy import CallLimits

    manager = CallLimits(lambda_tokens=2e-4, lambda_seconds=0.0, max_call_tokens=900, max_call_seconds=None)
    user = CallLimits(lambda_tokens=1e-3, lambda_seconds=0.01, max_call_tokens=None, max_call_seconds=30)
    limits = within_budget(manager, user, 0.8)
    assert (limits.lambda_tokens, limits.lambda_seconds) == (1e-3, 0.01)  # the user's, dearer here
    assert (limits.max_call_tokens, limits.max_call_seconds, limits.quantile) == (900, 30, 0.8)
    cheap_user = within_budget(manager, CallLimits(lambda_tokens=1e-6), 0.9)
    assert cheap_user.lambda_tokens == 2e-4  # the budget raises a cheaper price, never lowers a dearer one


def _budgeted_limits(**settings):
    """The limits one budgeted node call ran under, with ``settings`` in the run's context."""
    from fakes import ScriptedBackend, bundle_for, texts
    from langchain_core.messages import HumanMessage
    from langgraph.graph import START, MessagesState, StateGraph

    from ttc_agent.budgets import BudgetState
    from ttc_agent.nodes import TTCContext, TTCEngine, TTCNode

    class State(MessagesState, BudgetState):
        pass

    g = StateGraph(State, context_schema=TTCContext)
    g.add_node("solve", TTCNode(TTCEngine(ScriptedBackend(texts("= 1023", tokens=8)), bundle_for(None))))
    g.add_edge(START, "solve")
    app_ = g.compile()
    out = app_.invoke({"messages": [HumanMessage("What is 345 + 678?")]},
                      context=TTCContext(budget=WorkflowBudget(max_tokens=2000), **settings))  # fmt: skip
    return out, out["messages"][-1].response_metadata["ttc"]["limits"]


def test_a_runs_settings_under_a_budget_follow_the_documented_rule():
    """docs/budgets.md's table, row by row: nothing set, a per-call cap, a target."""
    _, plain = _budgeted_limits()
    assert plain["max_call_tokens"] is not None  # the budget's own allowance for this call
    _, capped = _budgeted_limits(max_call_tokens=400)
    assert capped["max_call_tokens"] == 400 < plain["max_call_tokens"]  # the tighter of the run's cap and the allowance
    _, loose = _budgeted_limits(max_call_tokens=10**6)
    assert loose["max_call_tokens"] == plain["max_call_tokens"]
    _, targeted = _budgeted_limits(target_mean_tokens=1)  # a tiny target calibrates to a dear price
    assert targeted["lambda_tokens"] > plain["lambda_tokens"]


def test_deprecated_limit_names_still_work_and_warn():
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    from ttc_agent.budgets import Ledger
    from ttc_agent.errors import InvalidRequestError
    from ttc_agent.nodes import TTCContext
    from ttc_agent.policy import CallLimits, UtilityPolicy

    with pytest.warns(DeprecationWarning, match="'max_(tokens|seconds)' is deprecated, use 'max_call_"):
        limits = CallLimits(max_tokens=400, max_seconds=5.0)
    assert (limits.max_call_tokens, limits.max_call_seconds) == (400, 5.0)
    with pytest.warns(DeprecationWarning, match="max_call_seconds"):
        assert limits.max_seconds == 5.0
    with pytest.warns(DeprecationWarning, match="max_call_tokens"):
        assert UtilityPolicy(max_tokens=300).limits.max_call_tokens == 300
    with pytest.warns(DeprecationWarning, match="TTCContext: 'max_seconds'"):
        context = TTCContext(max_seconds=30, budget=WorkflowBudget(max_tokens=2000))
    assert context.max_call_seconds == 30 and context.budget.max_tokens == 2000
    with pytest.raises(InvalidRequestError, match="max_call_tokens"), pytest.warns(DeprecationWarning):
        TTCContext(max_tokens=0)  # a bad value is named by the field's new name
    with pytest.raises(TypeError, match="not both"):
        CallLimits(max_tokens=1, max_call_tokens=2)
    with pytest.warns(DeprecationWarning, match="pacer_lambda_tokens"):
        old = Ledger(tokens=5, lambda_tokens=0.01)  # a ledger as an older checkpoint stored it
    assert old.pacer_lambda_tokens == 0.01
    serde = JsonPlusSerializer()
    assert serde.loads_typed(serde.dumps_typed(old)) == old


def test_a_runs_price_reaches_a_budgeted_decision_in_the_node():
    out, limits = _budgeted_limits(lambda_tokens=1e-3)
    assert limits["lambda_tokens"] >= 1e-3  # not dropped under the budget
    assert out["ttc_ledger"].pacer_lambda_tokens <= limits["lambda_tokens"]  # the ledger keeps the manager's own price
