"""`BudgetGate`: one budgeted call, from the balance to the reservation to the ledger increment."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from ttc_agent.budgets.budget import BudgetError, BudgetExhausted, BudgetExhaustedError, Grant, WorkflowBudget
from ttc_agent.budgets.expected import CallHistory
from ttc_agent.budgets.ledger import Ledger, charge
from ttc_agent.budgets.managers import Allowance, Balance, BudgetManager, balance_for, cheapest_cost, make_manager
from ttc_agent.budgets.pool import POOL, AccountKey, Amount, Reservation
from ttc_agent.budgets.store import BudgetStore
from ttc_agent.policy import CallLimits, Decision, fits
from ttc_agent.probes.predictions import Predictions
from ttc_agent.records import BudgetRecord


@dataclass(frozen=True)
class CallPlan:
    """What a budgeted call may do: the decision and the hard limits it runs under."""

    budget: WorkflowBudget
    run: str
    node: str
    decision: Decision
    balance: Balance
    allowance: Allowance
    reservation: Reservation
    started: float

    @property
    def max_total_tokens(self) -> int | None:
        """The call's hard cap on counted tokens (its reservation)."""
        return None if self.reservation.tokens is None else int(self.reservation.tokens)

    def max_seconds(self) -> float | None:
        """The call's deadline from now: the reserved seconds less what planning took."""
        if self.reservation.seconds is None:
            return None
        return max(self.reservation.seconds - (time.perf_counter() - self.started), 0.001)


#: A call reserves its caps, but no more than these multiples of its chosen strategy's q90
#: tokens and seconds, so concurrent calls are not starved by one call's generous cap (seconds
#: get more room: latency varies with the machine's load more than token counts do).
HEADROOM = (1.5, 2.0)


def _min_cap(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def within_budget(manager: CallLimits, user: CallLimits, quantile: float) -> CallLimits:
    """A budgeted call's limits, the one place where a user's settings meet a budget's allowance:
    each price is the dearer of the user's (``lambda_*``, or the one a ``target_mean_*``
    calibrated) and the manager's, so a price the user set is a floor the budget can only raise;
    each cap is the tighter of the two; costs are checked at the budget's ``quantile``."""
    return replace(
        manager,
        lambda_tokens=max(manager.lambda_tokens, user.lambda_tokens),
        lambda_seconds=max(manager.lambda_seconds, user.lambda_seconds),
        max_call_tokens=_min_cap(manager.max_call_tokens, user.max_call_tokens),
        max_call_seconds=_min_cap(manager.max_call_seconds, user.max_call_seconds),
        quantile=quantile,
    )


def call_caps(limits: CallLimits, tokens_q90: float, seconds_q90: float) -> Amount:
    """What a call reserves and runs under: its caps, at most `HEADROOM` times its chosen
    strategy's q90 tokens and seconds (the gate and the budget simulator both use it)."""
    return Amount(
        _min_cap(limits.max_call_tokens, HEADROOM[0] * tokens_q90),
        _min_cap(limits.max_call_seconds, HEADROOM[1] * seconds_q90),
    )


def _want(decision: Decision, predictions: Predictions) -> Amount:
    """What a call reserves (`call_caps` of its chosen strategy)."""
    i = decision.index
    return call_caps(decision.limits, float(decision.tokens_q90[i]), float(predictions.seconds_q90[0][i]))


@dataclass(frozen=True)
class PlannedCall:
    """The pure part of planning a budgeted call: the manager's allowance, the limits the call
    runs under, the decision they give, and what the call would reserve (``None`` when nothing
    fits)."""

    allowance: Allowance
    limits: CallLimits
    decision: Decision
    want: Amount | None


def plan_call(
    manager: BudgetManager,
    balance: Balance,
    predictions: Predictions,
    decide: Callable[[CallLimits], Decision],
    *,
    user_limits: CallLimits,
    quantile: float,
    calibration: Predictions | None = None,
) -> PlannedCall:
    """Balance -> allowance -> limits (`within_budget`) -> decision -> reservation wanted
    (`call_caps`): what `BudgetGate.plan` does before it touches a store, and what the budget
    simulator does for every simulated call, so the two cannot drift apart."""
    allowance = manager.allowance(balance, predictions, calibration)
    limits = within_budget(allowance.limits, user_limits, quantile)
    decision = decide(limits)
    return PlannedCall(allowance, limits, decision, _want(decision, predictions) if decision.feasible else None)


class BudgetGate:
    """Plans and settles budgeted calls for a node (shared by all its threads).

    Args:
        manager: ``"paced"`` (default), ``"equal"`` or a `BudgetManager`.
        pool: where concurrent calls reserve (the process-wide pool by default).
        history: learns the calls still expected when the budget does not say (`CallHistory`).
    """

    def __init__(
        self,
        manager: str | BudgetManager = "paced",
        pool: BudgetStore | None = None,
        history: CallHistory | None = None,
    ) -> None:
        self.manager = make_manager(manager)
        self.pool = pool or POOL
        self.history = history or CallHistory()

    def _key(self, budget: WorkflowBudget, thread: str, run: str) -> AccountKey:
        if budget.shared_by is not None:
            return ("shared", budget.shared_by, budget.digest)
        return ("thread", thread, budget.digest) if budget.scope == "thread" else ("run", thread, run, budget.digest)

    def plan(
        self,
        budget: WorkflowBudget,
        ledger: Ledger | None,
        *,
        run: str,
        thread: str,
        node: str,
        predictions: Predictions,
        decide: Callable[[CallLimits], Decision],
        user_limits: CallLimits,
        calibration: Predictions | None = None,
        remaining_steps: int | None = None,
        grant: Grant = Grant(),
    ) -> CallPlan:
        """Decide under the budget and reserve the call's caps; raises `BudgetExhaustedError`
        when not even the cheapest strategy fits."""
        started = time.perf_counter()
        ledger = ledger or Ledger()
        if ledger.budget and ledger.budget != budget.digest and (budget.scope == "thread" or ledger.run == run):
            raise BudgetError(
                f"this thread's ledger was kept under another budget ({ledger.budget}); the call runs under "
                f"{budget} ({budget.digest}). Start a new thread or keep the budget."
            )
        spent_t, spent_s, calls_done = ledger.spent(budget.scope, run)
        granted_t, granted_s = ledger.granted(budget.scope, run)
        granted = Grant(granted_t, granted_s) + grant
        key = self._key(budget, thread, run)
        seen_t, seen_s, _ = self.pool.available(key, spent_t, spent_s)
        so_far = ledger.calls_of_run(run)
        expected = budget.expected_calls or self.history.expected_total(run, so_far)
        calls_left = max(expected - calls_done, 1)
        if remaining_steps is not None:
            calls_left = max(min(calls_left, int(remaining_steps)), 1)
        same_run = ledger.run == run
        lambdas = (ledger.pacer_lambda_tokens, ledger.pacer_lambda_seconds) if same_run else (None, None)
        balance = balance_for(budget, seen_t, seen_s, granted, calls_done, calls_left, lambdas)
        planned = plan_call(self.manager, balance, predictions, decide, user_limits=user_limits,
                            quantile=budget.quantile, calibration=calibration)  # fmt: skip
        allowance, limits, decision = planned.allowance, planned.limits, planned.decision
        if planned.want is not None:
            chosen = decision.index
            totals = Amount(balance.tokens_total, balance.seconds_total)
            reservation = self.pool.reserve(key, (spent_t, spent_s), totals, planned.want)
            # Calls that reserved in the meantime may have shrunk what is left: re-check.
            reserved = replace(
                limits,
                max_call_tokens=None if reservation.tokens is None else max(reservation.tokens, 1e-9),
                max_call_seconds=None if reservation.seconds is None else max(reservation.seconds, 1e-9),
            )
            if not fits(predictions, reserved)[0][chosen]:
                self.pool.release(reservation)
                decision = decide(reserved)
                if decision.feasible:
                    reservation = self.pool.reserve(key, (spent_t, spent_s), totals, _want(decision, predictions))
        if not decision.feasible:
            raise BudgetExhaustedError(self._exhausted(decision, predictions, balance, node))
        return CallPlan(budget, run, node, decision, balance, allowance, reservation, started)

    @staticmethod
    def _exhausted(decision: Decision, predictions: Predictions, balance: Balance, node: str) -> BudgetExhausted:
        lim = decision.limits
        cheapest_t, cheapest_s = cheapest_cost(balance, predictions)
        if lim.max_call_tokens is not None and cheapest_t > lim.max_call_tokens:
            return BudgetExhausted("tokens", cheapest_t, float(balance.tokens_left or 0.0), node)
        return BudgetExhausted("seconds", cheapest_s, float(balance.seconds_left or 0.0), node)

    def settle(self, plan: CallPlan, tokens: int, grant: Grant = Grant()) -> tuple[Ledger, BudgetRecord]:
        """Book the call's ``tokens`` (as the budget counts them: `TTCEngine.settle` works them
        out, charging a failed run its cap) and its seconds since the plan started, and return
        the ledger increment and the budget part of its record."""
        seconds = time.perf_counter() - plan.started
        self.pool.settle(plan.reservation, tokens, seconds)
        lim = plan.allowance.limits  # the manager's own prices, which it reads back next call
        increment = charge(
            plan.budget.digest,
            plan.run,
            plan.node,
            tokens=tokens,
            seconds=seconds,
            granted_tokens=grant.tokens,
            granted_seconds=grant.seconds,
            lambdas=(lim.lambda_tokens, lim.lambda_seconds),
        )
        b = plan.balance
        record = BudgetRecord(
            manager=getattr(self.manager, "name", type(self.manager).__name__),
            scope=plan.budget.scope,
            max_tokens=plan.budget.max_tokens,
            max_seconds=plan.budget.max_seconds,
            before=b.as_dict(),
            after={
                "tokens_left": None if b.tokens_left is None else b.tokens_left - tokens,
                "seconds_left": None if b.seconds_left is None else b.seconds_left - seconds,
            },
            reserve={"tokens": plan.allowance.reserve_tokens, "seconds": plan.allowance.reserve_seconds},
            reservation={"tokens": plan.reservation.tokens, "seconds": plan.reservation.seconds},
            charged={"tokens": tokens, "seconds": seconds},
            granted={"tokens": grant.tokens, "seconds": grant.seconds},
        )
        return increment, record

    def observe(self, run: str, ledger: Ledger | None, node: str) -> None:
        """Tell the call history this run has made one more call of ``node``."""
        calls = (ledger or Ledger()).calls_of_run(run)
        calls[node] = calls.get(node, 0) + 1
        self.history.observe(run, calls)
