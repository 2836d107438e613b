"""Budget managers: turn what a workflow has left into this call's lambdas and hard caps.

A manager sees a `Balance` (what is left, calls done and still expected, the prices it set
last time) and the probes' predictions for this call's query, and returns an `Allowance`.
Both shipped managers apply the *reserve rule*: a call may never take what the cheapest
strategy needs (at the budget's feasibility quantile) on every call still expected after it.

- `EqualSplit`: each call may spend what is left divided by the calls still expected, and
  picks the most accurate strategy that fits (no prices).
- `Paced`: a dual-ascent (Lagrangian) pacer. Prices start where the probes' calibration data
  says the mean call costs the per-call plan, and move multiplicatively with the gap between
  spend and plan: up when spending runs ahead, down when it runs behind. The cap is what is
  left minus the reserve, so cheap, easy calls leave compute for hard ones.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ttc_agent.budgets.budget import BudgetError, Grant, WorkflowBudget
from ttc_agent.budgets.ledger import PACER_RENAMES
from ttc_agent.deprecation import renamed_fields
from ttc_agent.estimators.predictors import TOKENS_QUANTILE
from ttc_agent.policy import CallLimits, UtilityPolicy
from ttc_agent.probes.predictions import Predictions
from ttc_agent.validation import NON_NEGATIVE, POSITIVE, check_param


@renamed_fields(PACER_RENAMES)
@dataclass(frozen=True)
class Balance:
    """Where a workflow stands before a call (``None`` where a limit is not budgeted)."""

    tokens_left: float | None
    seconds_left: float | None
    tokens_total: float | None
    seconds_total: float | None
    calls_done: int
    calls_left: int  # including this one, >= 1
    pacer_lambda_tokens: float | None = None  # the prices the manager set at the previous call
    pacer_lambda_seconds: float | None = None
    quantile: float = TOKENS_QUANTILE  # the budget's feasibility quantile (`WorkflowBudget.quantile`)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Allowance:
    """A manager's answer: this call's limits and the reserve it kept for later calls."""

    limits: CallLimits
    reserve_tokens: float = 0.0
    reserve_seconds: float = 0.0


class BudgetManager(Protocol):
    """Anything with ``allowance(balance, predictions, calibration) -> Allowance``.

    ``predictions`` holds this query's row (one query, every strategy); ``calibration`` is
    the probe bundle's training predictions (``None`` if it has none).
    """

    name: str

    def allowance(
        self, balance: Balance, predictions: Predictions, calibration: Predictions | None = None
    ) -> Allowance: ...


def cheapest_cost(balance: Balance, predictions: Predictions) -> tuple[float, float]:
    """The cheapest strategy's tokens and seconds at the budget's quantile, for this query."""
    q = balance.quantile
    return float(np.min(predictions.tokens_quantile(q)[0])), float(np.min(predictions.seconds_quantile(q)[0]))


def reserve(balance: Balance, predictions: Predictions) -> tuple[float, float]:
    """Tokens and seconds to keep for the calls after this one: the cheapest strategy's tokens
    and seconds at the budget's quantile (q90 by default), once per call still expected after
    this one."""
    later = max(balance.calls_left - 1, 0)
    tokens, seconds = cheapest_cost(balance, predictions)
    return later * tokens, later * seconds


def _caps(
    balance: Balance, predictions: Predictions, share: tuple[float | None, float | None]
) -> tuple[float | None, float | None, tuple[float, float]]:
    """Hard caps: what is left minus the reserve, within ``share``; when the reserve would leave
    this call less than the cheapest strategy needs, it may still take that much (the calls
    after it then find the budget spent, rather than this one)."""
    keep = reserve(balance, predictions)
    cheapest = cheapest_cost(balance, predictions)
    caps: list[float | None] = []
    for left, k, c, sh in zip((balance.tokens_left, balance.seconds_left), keep, cheapest, share, strict=True):
        if left is None:
            caps.append(None)
            continue
        cap = max(left - k, min(c, left))
        caps.append(cap if sh is None else min(cap, max(sh, min(c, left))))
    return caps[0], caps[1], keep


def _limits(
    lam_t: float, lam_s: float, cap_t: float | None, cap_s: float | None, quantile: float = TOKENS_QUANTILE
) -> CallLimits:
    # CallLimits wants caps > 0; a cap of 0 (nothing left) becomes the smallest positive one,
    # which no strategy fits, so the call is reported exhausted.
    def pos(x: float | None) -> float | None:
        return None if x is None else max(x, 1e-9)

    for name, lam in (("lambda_tokens", lam_t), ("lambda_seconds", lam_s)):
        check_param(name, lam, NON_NEGATIVE, owner="a budget manager's price", error=BudgetError)
    return CallLimits(lam_t, lam_s, pos(cap_t), pos(cap_s), quantile)


class EqualSplit:
    """What is left, divided by the calls still expected (never less than the cheapest
    strategy needs, if the reserve allows it); no prices within the share."""

    name = "equal"

    def allowance(
        self, balance: Balance, predictions: Predictions, calibration: Predictions | None = None
    ) -> Allowance:
        tokens, seconds = balance.tokens_left, balance.seconds_left
        share = (
            None if tokens is None else tokens / balance.calls_left,
            None if seconds is None else seconds / balance.calls_left,
        )
        cap_t, cap_s, keep = _caps(balance, predictions, share)
        return Allowance(_limits(0.0, 0.0, cap_t, cap_s, balance.quantile), *keep)


#: Starting prices `Paced` remembers (one per budget plan and calibration set in use).
_MAX_STARTS = 256


class Paced:
    """Dual-ascent pacing: prices rise when spending runs ahead of plan and fall when it runs behind.

    Args:
        step: how fast prices move; a call that puts spend one per-call plan ahead of the
            linear plan multiplies the price by ``exp(step)``.
        floor: the lowest price, as a multiple of the starting price.
        ceiling: the highest price, as a multiple of the starting price.
    """

    name = "paced"

    def __init__(self, step: float = 0.5, floor: float = 1e-3, ceiling: float = 1e3) -> None:
        for n, v in (("step", step), ("floor", floor), ("ceiling", ceiling)):
            check_param(n, v, POSITIVE, owner="Paced", error=BudgetError)
        if floor >= ceiling:
            raise BudgetError(f"Paced floor ({floor}) must be below ceiling ({ceiling})")
        self.step, self.floor, self.ceiling = float(step), float(floor), float(ceiling)
        # Starting prices per (plan, calibration), least recently used first. Each entry keeps
        # its calibration object alive, so the id in its key cannot be reused by another one.
        self._start: OrderedDict[tuple[float | None, float | None, int], tuple[Predictions | None, float, float]] = (
            OrderedDict()
        )

    def _initial(self, balance: Balance, calibration: Predictions | None) -> tuple[float, float]:
        calls = balance.calls_done + balance.calls_left
        plan_t = None if balance.tokens_total is None else balance.tokens_total / calls
        plan_s = None if balance.seconds_total is None else balance.seconds_total / calls
        key = (plan_t, plan_s, id(calibration))
        if key in self._start and self._start[key][0] is calibration:
            self._start.move_to_end(key)
        else:
            lam_t = lam_s = 0.0
            if calibration is not None:
                policy = UtilityPolicy()
                if plan_t is not None:
                    policy = policy.calibrate(calibration, target_mean_tokens=plan_t)
                if plan_s is not None:
                    policy = policy.calibrate(calibration, target_mean_seconds=plan_s)
                lam_t, lam_s = policy.limits.lambda_tokens, policy.limits.lambda_seconds
            # Without calibration data (or where it says any choice fits): spending the whole
            # per-call plan is worth a fifth of a correct answer.
            if plan_t is not None and lam_t == 0.0:
                lam_t = 0.2 / plan_t
            if plan_s is not None and lam_s == 0.0:
                lam_s = 0.2 / plan_s
            self._start[key] = (calibration, lam_t, lam_s)
            while len(self._start) > _MAX_STARTS:
                self._start.popitem(last=False)
        _, lam_t, lam_s = self._start[key]
        return lam_t, lam_s

    def _update(self, lam: float, start: float, spent: float, total: float, balance: Balance) -> float:
        calls = balance.calls_done + balance.calls_left
        per_call = total / calls
        planned = total * balance.calls_done / calls  # spend on a linear plan after the calls done
        lam = lam * math.exp(self.step * (spent - planned) / per_call)
        return min(max(lam, start * self.floor), start * self.ceiling)

    def allowance(
        self, balance: Balance, predictions: Predictions, calibration: Predictions | None = None
    ) -> Allowance:
        start_t, start_s = self._initial(balance, calibration)
        lam_t, lam_s = balance.pacer_lambda_tokens, balance.pacer_lambda_seconds
        # No price yet, or the zero a call expected to be the last one set: start over.
        lam_t = lam_t or start_t
        lam_s = lam_s or start_s
        if balance.tokens_left is not None and balance.tokens_total is not None and balance.calls_done:
            spent = balance.tokens_total - balance.tokens_left
            lam_t = self._update(lam_t, start_t, spent, balance.tokens_total, balance)
        if balance.seconds_left is not None and balance.seconds_total is not None and balance.calls_done:
            spent = balance.seconds_total - balance.seconds_left
            lam_s = self._update(lam_s, start_s, spent, balance.seconds_total, balance)
        if balance.calls_left == 1:  # nothing later to save for: accuracy within what is left
            lam_t = lam_s = 0.0
        cap_t, cap_s, keep = _caps(balance, predictions, (None, None))
        return Allowance(_limits(lam_t, lam_s, cap_t, cap_s, balance.quantile), *keep)


MANAGERS: dict[str, type[EqualSplit] | type[Paced]] = {"equal": EqualSplit, "paced": Paced}


def make_manager(manager: str | BudgetManager) -> BudgetManager:
    """A manager from a name (``"equal"``, ``"paced"``) or an object with ``allowance``."""
    if isinstance(manager, str):
        if manager not in MANAGERS:
            raise BudgetError(f"unknown budget manager {manager!r}; known: {sorted(MANAGERS)}")
        return MANAGERS[manager]()
    if not callable(getattr(manager, "allowance", None)):
        raise BudgetError(f"a budget manager needs an allowance() method, got {manager!r}")
    return manager


def balance_for(
    budget: WorkflowBudget,
    spent_tokens: float,
    spent_seconds: float,
    granted: Grant,
    calls_done: int,
    calls_left: int,
    lambdas: tuple[float | None, float | None] = (None, None),
) -> Balance:
    """The `Balance` of a workflow under ``budget`` (grants extend the totals)."""
    total_t = None if budget.max_tokens is None else budget.max_tokens + granted[0]
    total_s = None if budget.max_seconds is None else budget.max_seconds + granted[1]
    return Balance(
        tokens_left=None if total_t is None else max(total_t - spent_tokens, 0.0),
        seconds_left=None if total_s is None else max(total_s - spent_seconds, 0.0),
        tokens_total=total_t,
        seconds_total=total_s,
        calls_done=calls_done,
        calls_left=max(int(calls_left), 1),
        pacer_lambda_tokens=lambdas[0],
        pacer_lambda_seconds=lambdas[1],
        quantile=budget.quantile,
    )
