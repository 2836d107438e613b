"""Replay synthetic multi-call workflows from held-out traces under each budget manager.

A workflow is ``steps`` queries drawn from the traces; it succeeds when every step is right (or
``success_share`` of them). For each workflow and step, one recorded run of every strategy is
drawn up front (the "world"), so every allocation faces the same outcomes. Each allocation
picks a strategy per step from the probes' predictions; a chosen run whose cost passes the
call's hard caps is cut off there (charged the cap, counted wrong), as the backends' token cap
and deadline would. Nothing is generated.

Allocations compared at equal total budget:

- ``equal`` / ``paced``: the budget managers, with the reserve rule and hard caps;
- ``static:SPEC``: always one strategy, stopping when its cost at the budget's quantile (q90 by
  default) no longer fits;
- ``adaptive``: per-call utility with fixed prices and no manager, prices calibrated so its mean
  workflow cost equals the budget. Nothing stops it from overrunning: its violations are
  counted, and a workflow that overran does not count as a success under a hard budget
  (``success_ignoring_budget`` reports it as if the budget were soft);
- ``oracle``: hindsight, the cheapest right run per step when the total fits (the ceiling of
  success);
- ``spend_ceiling``: under the same rules as the managers (reserve rule, feasibility at the
  budget's quantile, and the hard caps the reserve leaves, as `Paced` sets them), every call
  takes the feasible strategy with the most predicted tokens: the most any manager bound by
  those guarantees could spend (the ceiling of utilisation), and what that spending buys.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np

from ttc_agent.budgets.budget import BudgetError, Grant, WorkflowBudget
from ttc_agent.budgets.managers import balance_for, make_manager
from ttc_agent.plotting import plot_simulation as plot_simulation  # the name it had here
from ttc_agent.policy import CallLimits, Decision, UtilityPolicy
from ttc_agent.probes.predictions import Predictions
from ttc_agent.validation import POSITIVE_INT, check_param


@dataclass(frozen=True)
class World:
    """Drawn workflows: the query of every step and, per strategy, the run it would get."""

    queries: np.ndarray  # workflows x steps
    correct: np.ndarray  # workflows x steps x strategies (0/1)
    tokens: np.ndarray  # workflows x steps x strategies
    seconds: np.ndarray  # workflows x steps x strategies


def draw_world(table: Any, workflows: int, steps: int, seed: int = 0) -> World:
    """Draw ``workflows`` workflows of ``steps`` queries from a `TraceTable`."""
    check_param("steps", steps, POSITIVE_INT, error=BudgetError)
    check_param("workflows", workflows, POSITIVE_INT, error=BudgetError)
    rng = np.random.default_rng(seed)
    specs = list(table.runs)
    q = rng.integers(0, len(table.ids), size=(workflows, steps))
    shape = (workflows, steps, len(specs))
    correct, tokens, seconds = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for j, spec in enumerate(specs):
        runs = table.runs[spec]
        for w in range(workflows):
            for t in range(steps):
                options = runs[q[w, t]]
                r = options[rng.integers(len(options))]
                correct[w, t, j], tokens[w, t, j], seconds[w, t, j] = r["correct"], r["total_tokens"], r["seconds"]
    return World(q, correct, tokens, seconds)


@dataclass
class Result:
    """One allocation at one budget: per-workflow outcomes."""

    success: np.ndarray
    tokens: np.ndarray
    seconds: np.ndarray
    violations: int
    soft_success: np.ndarray | None = None

    def summary(self, budget: WorkflowBudget) -> dict[str, float]:
        out = {
            "success": float(self.success.mean()),
            "tokens": float(self.tokens.mean()),
            "seconds": float(self.seconds.mean()),
            "violations": int(self.violations),
        }
        if self.soft_success is not None:
            out["success_ignoring_budget"] = float(self.soft_success.mean())
        if budget.max_tokens is not None:
            out["utilisation_tokens"] = float(self.tokens.mean() / budget.max_tokens)
        if budget.max_seconds is not None:
            out["utilisation_seconds"] = float(self.seconds.mean() / budget.max_seconds)
        return out


def _row(pred: Predictions, q: int) -> Predictions:
    return pred.take(slice(q, q + 1))


def _succeeded(right: np.ndarray, share: float) -> np.ndarray:
    return np.asarray(right.mean(axis=1) >= share - 1e-12)


def _outcome(
    world: World, w: int, t: int, j: int, cap_t: float | None, cap_s: float | None
) -> tuple[float, float, float]:
    """A chosen run, cut off at the call's hard caps."""
    tok, sec, ok = world.tokens[w, t, j], world.seconds[w, t, j], world.correct[w, t, j]
    if cap_t is not None and tok > cap_t:
        tok, ok = cap_t, 0.0
    if cap_s is not None and sec > cap_s:
        sec, ok = cap_s, 0.0
    return float(tok), float(sec), float(ok)


def run_manager(
    world: World,
    pred: Predictions,
    budget: WorkflowBudget,
    manager: Any,
    calibration: Any,
    share: float,
    *,
    spend_most: bool = False,
) -> Result:
    """Workflows under a budget manager (reserve rule, feasibility at the budget's quantile,
    hard caps).

    ``spend_most``: each call takes the feasible strategy with the most predicted tokens
    instead of the best utility under the manager's prices (the spend ceiling)."""
    from ttc_agent.budgets import gate  # the shipped rules, so the simulator cannot drift from them

    mgr = make_manager(manager)
    user = CallLimits()  # the simulated workflows set no prices or caps of their own
    W, T, _ = world.correct.shape
    right, spent_t, spent_s = np.zeros((W, T)), np.zeros(W), np.zeros(W)
    policy = UtilityPolicy()

    def decide(row: Predictions, limits: CallLimits) -> Decision:
        decision = policy.decide(row, limits)[0]
        if spend_most and decision.feasible:
            j = int(np.argmax(np.where(decision.fits, row.tokens[0], -np.inf)))
            decision = replace(decision, spec=row.specs[j], index=j)
        return decision

    for w in range(W):
        lambdas: tuple[float | None, float | None] = (None, None)
        for t in range(T):
            row = _row(pred, world.queries[w, t])
            balance = balance_for(budget, spent_t[w], spent_s[w], Grant(), t, T - t, lambdas)
            planned = gate.plan_call(mgr, balance, row, partial(decide, row), user_limits=user,
                                     quantile=budget.quantile, calibration=calibration)  # fmt: skip
            if planned.want is None:
                break  # exhausted: the remaining steps are not answered
            manager_prices = planned.allowance.limits
            lambdas = (manager_prices.lambda_tokens, manager_prices.lambda_seconds)  # what the ledger keeps
            j = planned.decision.index
            tok, sec, good = _outcome(world, w, t, j, planned.want.tokens, planned.want.seconds)
            spent_t[w] += tok
            spent_s[w] += sec
            right[w, t] = good
    return Result(_succeeded(right, share), spent_t, spent_s, _violations(budget, spent_t, spent_s))


def run_static(world: World, pred: Predictions, budget: WorkflowBudget, j: int, share: float) -> Result:
    """Always strategy ``j``, stopping when its cost at the budget's quantile (q90 by default)
    no longer fits what is left."""
    W, T, _ = world.correct.shape
    right, spent_t, spent_s = np.zeros((W, T)), np.zeros(W), np.zeros(W)
    need_t, need_s = pred.tokens_quantile(budget.quantile)[:, j], pred.seconds_quantile(budget.quantile)[:, j]
    for w in range(W):
        for t in range(T):
            q = world.queries[w, t]
            left_t = math.inf if budget.max_tokens is None else budget.max_tokens - spent_t[w]
            left_s = math.inf if budget.max_seconds is None else budget.max_seconds - spent_s[w]
            if need_t[q] > left_t or need_s[q] > left_s:
                break
            tok, sec, good = _outcome(
                world, w, t, j, None if math.isinf(left_t) else left_t, None if math.isinf(left_s) else left_s
            )
            spent_t[w] += tok
            spent_s[w] += sec
            right[w, t] = good
    return Result(_succeeded(right, share), spent_t, spent_s, _violations(budget, spent_t, spent_s))


def run_adaptive(world: World, pred: Predictions, budget: WorkflowBudget, share: float) -> Result:
    """Per-call utility with fixed prices and no manager; prices calibrated so the mean
    workflow cost equals the budget. No caps: it can overrun."""
    W, T, _ = world.correct.shape
    per_call = {}
    if budget.max_tokens is not None:
        per_call["target_mean_tokens"] = budget.max_tokens / T
    else:
        per_call["target_mean_seconds"] = budget.max_seconds / T
    q = world.queries.ravel()
    flat = pred.take(q)
    measured = (world.tokens if "target_mean_tokens" in per_call else world.seconds).reshape(W * T, -1)
    policy = UtilityPolicy().calibrate(flat, cost=measured, **per_call)
    choice = policy.choose(flat).reshape(W, T)
    pick = np.take_along_axis
    right = pick(world.correct, choice[..., None], axis=2)[..., 0]
    spent_t = pick(world.tokens, choice[..., None], axis=2)[..., 0].sum(axis=1)
    spent_s = pick(world.seconds, choice[..., None], axis=2)[..., 0].sum(axis=1)
    over = _over(budget, spent_t, spent_s)
    result = Result(_succeeded(right, share) & ~over, spent_t, spent_s, int(over.sum()))
    result.soft_success = _succeeded(right, share)
    return result


def run_oracle(world: World, budget: WorkflowBudget, share: float) -> Result:
    """Hindsight: per step the cheapest right run (or the cheapest run when none is right);
    with a share below 1, the cheapest steps are made right first, as far as the budget goes."""
    W, T, S = world.correct.shape
    cost = world.tokens if budget.max_tokens is not None else world.seconds
    limit = budget.max_tokens if budget.max_tokens is not None else budget.max_seconds
    big = np.where(world.correct > 0, cost, np.inf)
    right_cost = big.min(axis=2)  # W x T: cheapest right run (inf: none)
    cheapest = cost.min(axis=2)
    need = math.ceil(share * T - 1e-9)
    success, spent_t, spent_s = np.zeros(W, dtype=bool), np.zeros(W), np.zeros(W)
    for w in range(W):
        extra = np.sort(right_cost[w] - cheapest[w])  # what making each step right adds
        base = cheapest[w].sum()
        total = base + (extra[:need].sum() if need else 0.0)
        ok = np.isfinite(total) and total <= limit
        success[w] = ok
        spent = total if ok else min(base, limit)
        if budget.max_tokens is not None:
            spent_t[w] = spent
        else:
            spent_s[w] = spent
    return Result(success, spent_t, spent_s, 0)


def _over(budget: WorkflowBudget, tokens: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Which workflows spent more than the budget."""
    over = np.zeros(len(tokens), dtype=bool)
    if budget.max_tokens is not None:
        over |= tokens > budget.max_tokens + 1e-6
    if budget.max_seconds is not None:
        over |= seconds > budget.max_seconds + 1e-6
    return over


def _violations(budget: WorkflowBudget, tokens: np.ndarray, seconds: np.ndarray) -> int:
    return int(_over(budget, tokens, seconds).sum())


def simulate(
    table: Any,
    pred: Predictions,
    budgets: Sequence[WorkflowBudget],
    *,
    steps: int = 4,
    workflows: int = 10_000,
    managers: Sequence[str] = ("equal", "paced"),
    statics: Sequence[str] = (),
    calibration: Any = None,
    success_share: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Every allocation at every budget: one row each (success, mean tokens and seconds,
    utilisation, violations). ``pred`` holds the probes' predictions for ``table``'s queries."""
    if not 0 < success_share <= 1:
        raise BudgetError(f"success_share must be in (0, 1], got {success_share!r}")
    from rich.progress import track

    world = draw_world(table, workflows, steps, seed)
    rows = []
    for budget in track(budgets, description="simulate", disable=not progress):
        limit = {"max_tokens": budget.max_tokens, "max_seconds": budget.max_seconds}
        runs: dict[str, Result] = {}
        names = []
        for m in managers:
            names.append(getattr(make_manager(m), "name", str(m)))
            runs[names[-1]] = run_manager(world, pred, budget, m, calibration, success_share)
        for spec in statics:
            runs[f"static:{spec}"] = run_static(world, pred, budget, list(pred.specs).index(spec), success_share)
        runs["adaptive"] = run_adaptive(world, pred, budget, success_share)
        runs["oracle"] = run_oracle(world, budget, success_share)
        runs["spend_ceiling"] = run_manager(world, pred, budget, "paced", calibration, success_share, spend_most=True)
        oracle = runs["oracle"].success.mean()
        adaptive = runs["adaptive"].success.mean()
        for name, result in runs.items():
            row = {"allocation": name, **limit, **result.summary(budget)}
            if name in names and oracle > adaptive:
                row["gap_closed_vs_adaptive"] = float((result.success.mean() - adaptive) / (oracle - adaptive))
            rows.append(row)
    return rows
