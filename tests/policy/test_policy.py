"""Utility maximisation, caps, calibration, static and oracle policies."""

import math

import numpy as np
import pytest

from ttc_agent.errors import InvalidRequestError
from ttc_agent.policy import CallLimits, OraclePolicy, StaticPolicy, UtilityPolicy
from ttc_agent.probes import Predictions

SPECS = ("greedy", "best_of_n(8, select=majority)", "beam(width=2, expand=2, max_steps=8)")


def preds(accuracy, tokens, seconds):
    a, t, s = (np.asarray(x, dtype=float) for x in (accuracy, tokens, seconds))
    return Predictions(SPECS, a, t, t * 1.3, t, s, np.ones_like(a))


# Query 0 is easy (greedy is enough), query 1 is hard (search helps).
P = preds([[0.9, 0.92, 0.91], [0.2, 0.5, 0.6]], [[50, 400, 250], [60, 480, 300]], [[1.0, 2.0, 6.0], [1.2, 2.5, 8.0]])


def test_free_compute_takes_the_most_accurate_and_prices_shift_the_choice():
    assert UtilityPolicy().choose(P).tolist() == [1, 2]
    # At 1e-3 a token: easy 0.85 / 0.52 / 0.66, hard 0.14 / 0.02 / 0.30.
    assert UtilityPolicy(lambda_tokens=1e-3).choose(P).tolist() == [0, 2]
    assert UtilityPolicy(lambda_tokens=1.0).choose(P).tolist() == [0, 0]


def test_latency_price_flips_beam_search_to_best_of_n():
    """Beam search spends fewer tokens but more sequential seconds: the latency price decides."""
    low = UtilityPolicy(lambda_tokens=2e-4, lambda_seconds=0.0).choose(P)
    high = UtilityPolicy(lambda_tokens=2e-4, lambda_seconds=0.05).choose(P)
    assert low[1] == 2 and high[1] == 1


def test_hard_caps_use_the_token_quantile_and_fall_back_to_the_cheapest():
    decisions = UtilityPolicy(max_call_tokens=400).decide(P)
    # best_of_n's q90 (400 * 1.3 = 520) does not fit 400 tokens; beam's (325) does.
    assert decisions[0].spec == SPECS[2] and decisions[0].fits == (True, False, True) and decisions[0].feasible
    nothing = UtilityPolicy(max_call_tokens=10).decide(P)
    assert all(d.spec == "greedy" and not d.feasible for d in nothing)
    assert UtilityPolicy(max_call_seconds=1.1).decide(P)[1].spec == "greedy"


def test_a_lower_quantile_admits_what_the_q90_refuses():
    assert np.allclose(P.tokens_quantile(0.9), P.tokens_q90) and np.allclose(P.tokens_quantile(0.5), P.tokens)
    assert (P.tokens < P.tokens_quantile(0.75)).all() and (P.tokens_quantile(0.75) < P.tokens_q90).all()
    assert np.allclose(P.seconds_quantile(0.5), P.seconds) and (P.seconds_quantile(0.9) > P.seconds).all()
    # best_of_n on the hard query: median 480, q90 624. A 500-token cap refuses it at q90 only.
    strict = UtilityPolicy(max_call_tokens=500).decide(P)[1]
    loose = UtilityPolicy(max_call_tokens=500, quantile=0.5).decide(P)[1]
    assert strict.fits == (True, False, True) and loose.fits == (True, True, True)
    assert loose.as_dict()["limits"]["quantile"] == 0.5


def test_allowed_mask_excludes_strategies():
    no_beam = [True, True, False]
    assert UtilityPolicy().choose(P, allowed=no_beam).tolist() == [1, 1]
    d = UtilityPolicy(max_call_tokens=10).decide(P, allowed=[False, True, False])[0]
    assert d.spec == SPECS[1] and not d.feasible, "nothing fits: the cheapest allowed one"


def test_decision_record_is_complete():
    d = UtilityPolicy(lambda_tokens=1e-3).decide(P)[1].as_dict()
    assert d["choice"] == SPECS[2] and len(d["candidates"]) == 3
    assert d["limits"]["lambda_tokens"] == 1e-3
    assert d["candidates"][0]["utility"] == pytest.approx(0.2 - 0.06)


def test_calibrate_hits_a_target_mean_cost():
    rng = np.random.default_rng(0)
    n = 400
    hard = rng.random(n)
    acc = np.column_stack([1 - hard, 1 - 0.6 * hard, 1 - 0.5 * hard])
    tok = np.column_stack([np.full(n, 50.0), np.full(n, 400.0), np.full(n, 250.0)])
    p = preds(acc, tok, tok / 100)
    policy = UtilityPolicy().calibrate(p, target_mean_tokens=150)
    chosen = policy.choose(p)
    assert abs(tok[np.arange(n), chosen].mean() - 150) < 15
    assert policy.limits.lambda_tokens > 0
    assert UtilityPolicy().calibrate(p, target_mean_tokens=1e6).limits.lambda_tokens == 0.0
    sec = UtilityPolicy().calibrate(p, target_mean_seconds=1.5)
    assert abs((tok / 100)[np.arange(n), sec.choose(p)].mean() - 1.5) < 0.2


def test_static_and_oracle():
    assert StaticPolicy(SPECS[1]).choose(P).tolist() == [1, 1]
    with pytest.raises(InvalidRequestError, match="menu"):
        StaticPolicy("beam(width=9)").choose(P)
    oracle = OraclePolicy(
        correct=[[1, 1, 1], [0, 0, 1]], tokens=[[50, 400, 250], [60, 480, 300]], seconds=[[1, 2, 6], [1, 2, 8]]
    )
    assert oracle.choose().tolist() == [0, 2], "ties go to the cheapest; hard query needs beam"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"lambda_tokens": -1}, "lambda_tokens"),
        ({"lambda_seconds": math.nan}, "lambda_seconds"),
        ({"max_call_tokens": 0}, "max_call_tokens"),
        ({"max_call_seconds": math.inf}, "max_call_seconds"),
        ({"quantile": 0.4}, "quantile must be a finite number in \\[0.5, 1\\), got 0.4"),
        ({"quantile": 1.0}, "quantile"),
        ({"quantile": "high"}, "quantile"),
    ],
)
def test_bad_limits_raise(kwargs, needle):
    with pytest.raises(InvalidRequestError, match=needle):
        CallLimits(**kwargs)


def test_calibrate_needs_one_target():
    with pytest.raises(InvalidRequestError, match="exactly one"):
        UtilityPolicy().calibrate(P)
    with pytest.raises(InvalidRequestError, match="target"):
        UtilityPolicy().calibrate(P, target_mean_tokens=-5)
