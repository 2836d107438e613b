"""Property-based tests (hypothesis) of the ledger reducer and the budget managers."""

from __future__ import annotations

import math
from functools import reduce

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttc_agent.budgets import BudgetError, EqualSplit, Paced
from ttc_agent.budgets.ledger import Ledger, charge, merge_ledgers
from ttc_agent.budgets.managers import Balance
from ttc_agent.policy import fits
from ttc_agent.probes.predictions import Predictions

spends = st.lists(
    st.tuples(st.integers(0, 10_000), st.floats(0, 600, allow_nan=False), st.sampled_from(["a", "b", "c"])),
    max_size=30,
)


@given(spends)
def test_ledger_totals_are_the_sums_of_the_spends_in_any_order(calls):
    increments = [charge("B", "run-1", node, tokens=t, seconds=s) for t, s, node in calls]
    forward = reduce(merge_ledgers, increments, None) or Ledger()
    backward = reduce(merge_ledgers, reversed(increments), None) or Ledger()
    for ledger in (forward, backward):
        assert ledger.tokens == ledger.run_tokens == sum(t for t, _, _ in calls) >= 0
        assert math.isclose(ledger.seconds, sum(s for _, s, _ in calls), abs_tol=1e-6) and ledger.seconds >= 0
        assert ledger.calls == len(calls) == sum(ledger.node_calls.values())


@given(spends, spends)
def test_a_new_run_restarts_run_totals_and_keeps_thread_totals(first, second):
    ledger = None
    for t, s, node in first:
        ledger = merge_ledgers(ledger, charge("B", "run-1", node, tokens=t, seconds=s))
    for t, s, node in second:
        ledger = merge_ledgers(ledger, charge("B", "run-2", node, tokens=t, seconds=s))
    if ledger is None:
        return
    assert ledger.tokens == sum(t for t, _, _ in first + second)
    if second:
        assert ledger.run == "run-2" and ledger.run_tokens == sum(t for t, _, _ in second)


@pytest.mark.parametrize(
    "kwargs",
    [{"tokens": -1}, {"seconds": -0.5}, {"seconds": math.nan}, {"seconds": math.inf}, {"tokens": 1.5}],
)
def test_an_increment_that_would_lower_or_poison_the_ledger_is_refused(kwargs):
    with pytest.raises(BudgetError, match=next(iter(kwargs))):
        charge("B", "run-1", "n", **kwargs)


def predictions(tokens: list[float], spread: list[float], seconds: list[float]) -> Predictions:
    t = np.array([tokens])
    return Predictions(
        tuple(f"s{i}" for i in range(len(tokens))),
        accuracy=np.linspace(0.3, 0.9, len(tokens))[None, :],
        tokens=t,
        tokens_q90=t * np.array([spread]),
        completion_tokens=t * 0.8,
        seconds=np.array([seconds]),
        rounds=np.ones_like(t),
    )


menus = st.integers(1, 5).flatmap(
    lambda k: st.tuples(
        st.lists(st.floats(10, 5000), min_size=k, max_size=k),
        st.lists(st.floats(1.0, 3.0), min_size=k, max_size=k),
        st.lists(st.floats(0.1, 120), min_size=k, max_size=k),
    )
)


@settings(max_examples=200, deadline=None)
@given(
    menu=menus,
    total_tokens=st.floats(1, 50_000),
    spent_share=st.floats(0, 1),
    total_seconds=st.floats(1, 1_000) | st.none(),
    calls_done=st.integers(0, 10),
    calls_left=st.integers(1, 10),
    quantile=st.sampled_from([0.5, 0.75, 0.9, 0.95]),
    manager=st.sampled_from([EqualSplit, Paced]),
)
def test_a_manager_never_admits_a_strategy_costing_more_than_is_left(
    menu, total_tokens, spent_share, total_seconds, calls_done, calls_left, quantile, manager
):
    tokens, spread, seconds = menu
    pred = predictions(tokens, spread, seconds)
    left_t = total_tokens * (1 - spent_share)
    left_s = None if total_seconds is None else total_seconds * (1 - spent_share)
    balance = Balance(left_t, left_s, total_tokens, total_seconds, calls_done, calls_left, quantile=quantile)
    limits = manager().allowance(balance, pred, pred).limits
    admitted = fits(pred, limits)[0]
    assert limits.max_call_tokens is not None and limits.max_call_tokens <= max(left_t, 1e-9) * (1 + 1e-9)
    for j in np.flatnonzero(admitted):
        assert pred.tokens_quantile(quantile)[0, j] <= left_t * (1 + 1e-6)
        if left_s is not None:
            assert pred.seconds_quantile(quantile)[0, j] <= left_s * (1 + 1e-6)
