"""Choose a strategy per query: ``argmax accuracy - lambda_tokens * tokens - lambda_seconds * seconds``.

The method of arXiv 2509.09864. Every call's settings are a `CallLimits`: the two prices,
optional hard caps on this call's tokens and seconds, and the quantile the caps are checked at.
A strategy is *feasible* when that high quantile (``quantile``, 0.9 by default) of its predicted
tokens and seconds fits the caps; when none is, the cheapest strategy is chosen and the decision
says so (``feasible=False``), so a budget manager can end the workflow instead.

Policies work on `ttc_agent.probes.Predictions` (many queries at once, vectorised):

- `UtilityPolicy(lambda_tokens, lambda_seconds)`, with `calibrate` to hit a target mean cost;
- `StaticPolicy(spec)`: one strategy for every query (the baseline);
- `OraclePolicy`: the hindsight best per query from measured outcomes (the ceiling; evaluation only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ttc_agent.deprecation import renamed_fields, renamed_keys
from ttc_agent.errors import InvalidRequestError
from ttc_agent.estimators.predictors import TOKENS_QUANTILE
from ttc_agent.probes.predictions import Predictions
from ttc_agent.records import CandidateRecord, DecisionRecord, LimitsRecord
from ttc_agent.validation import NON_NEGATIVE, POSITIVE, Interval, check_param

#: A feasibility quantile: in [0.5, 1).
QUANTILE = Interval(float, 0.5, 1, closed="left")


def _check_price(name: str, value: Any) -> float:
    return float(check_param(name, value, NON_NEGATIVE))


def check_quantile(value: Any, error: type[InvalidRequestError] = InvalidRequestError) -> float:
    """A feasibility quantile: a number in [0.5, 1) (raises ``error`` naming a bad value)."""
    return float(check_param("quantile", value, QUANTILE, error=error))


def _check_cap(name: str, value: Any) -> float | None:
    checked = check_param(name, value, POSITIVE, allow_none=True)
    return None if checked is None else float(checked)


#: The per-call caps' old names (deprecated): ``max_tokens`` meant five things.
CAP_RENAMES = {"max_tokens": "max_call_tokens", "max_seconds": "max_call_seconds"}


@renamed_fields(CAP_RENAMES)
@dataclass(frozen=True)
class CallLimits:
    """What one call may spend: prices per token and per second, optional hard caps, and the
    quantile of a strategy's predicted cost that must fit them (``quantile``, in [0.5, 1): the
    higher, the less often a call is cut off at its cap, and the more budget is kept back)."""

    lambda_tokens: float = 0.0
    lambda_seconds: float = 0.0
    max_call_tokens: float | None = None
    max_call_seconds: float | None = None
    quantile: float = TOKENS_QUANTILE

    def __post_init__(self) -> None:
        object.__setattr__(self, "lambda_tokens", _check_price("lambda_tokens", self.lambda_tokens))
        object.__setattr__(self, "lambda_seconds", _check_price("lambda_seconds", self.lambda_seconds))
        object.__setattr__(self, "max_call_tokens", _check_cap("max_call_tokens", self.max_call_tokens))
        object.__setattr__(self, "max_call_seconds", _check_cap("max_call_seconds", self.max_call_seconds))
        object.__setattr__(self, "quantile", check_quantile(self.quantile))


@dataclass(frozen=True)
class Decision:
    """One query's choice, with everything needed to audit it."""

    spec: str
    index: int
    feasible: bool
    limits: CallLimits
    specs: tuple[str, ...]
    accuracy: tuple[float, ...]
    tokens: tuple[float, ...]
    tokens_q90: tuple[float, ...]
    seconds: tuple[float, ...]
    utility: tuple[float, ...]
    fits: tuple[bool, ...] = field(default=())

    def as_dict(self) -> DecisionRecord:
        """The decision's part of a `DecisionRecord` (for traces and reports)."""
        return {
            "choice": self.spec,
            "feasible": self.feasible,
            "limits": LimitsRecord(
                lambda_tokens=self.limits.lambda_tokens,
                lambda_seconds=self.limits.lambda_seconds,
                max_call_tokens=self.limits.max_call_tokens,
                max_call_seconds=self.limits.max_call_seconds,
                quantile=self.limits.quantile,
            ),
            "candidates": [
                CandidateRecord(strategy=s, accuracy=a, tokens=t, tokens_q90=q, seconds=sec, utility=u, fits=f)
                for s, a, t, q, sec, u, f in zip(
                    self.specs,
                    self.accuracy,
                    self.tokens,
                    self.tokens_q90,
                    self.seconds,
                    self.utility,
                    self.fits,
                    strict=True,
                )
            ],
        }


def utilities(pred: Predictions, limits: CallLimits) -> np.ndarray:
    """``accuracy - lambda_tokens * tokens - lambda_seconds * seconds``, per query and strategy."""
    return pred.accuracy - limits.lambda_tokens * pred.tokens - limits.lambda_seconds * pred.seconds


#: Relative slack in `fits`, so a cap computed as a sum of spends that equals a cost is not
#: refused for a rounding error.
_ROUNDING = 1e-9


def fits(pred: Predictions, limits: CallLimits, allowed: Sequence[bool] | None = None) -> np.ndarray:
    """Which strategies fit the hard caps (tokens and seconds checked at ``limits.quantile``,
    up to float rounding) and are allowed."""
    ok = np.ones_like(pred.accuracy, dtype=bool)
    if allowed is not None:
        ok &= np.asarray(allowed, dtype=bool)[None, :]
    if limits.max_call_tokens is not None:
        ok &= pred.tokens_quantile(limits.quantile) <= limits.max_call_tokens * (1 + _ROUNDING)
    if limits.max_call_seconds is not None:
        ok &= pred.seconds_quantile(limits.quantile) <= limits.max_call_seconds * (1 + _ROUNDING)
    return ok


class UtilityPolicy:
    """Picks ``argmax accuracy - lambda_tokens * tokens - lambda_seconds * seconds`` among the
    strategies that fit the caps.

    Example:
        >>> policy = UtilityPolicy(lambda_tokens=1e-3).calibrate(preds, target_mean_tokens=300)
        >>> policy.decide(bundle.predict([messages], [n_tokens]))[0].spec
    """

    def __init__(
        self,
        lambda_tokens: float = 0.0,
        lambda_seconds: float = 0.0,
        *,
        max_call_tokens: float | None = None,
        max_call_seconds: float | None = None,
        quantile: float = TOKENS_QUANTILE,
        **deprecated: float | None,
    ) -> None:
        caps = {"max_call_tokens": max_call_tokens, "max_call_seconds": max_call_seconds}
        old = renamed_keys("UtilityPolicy", CAP_RENAMES, deprecated)
        if unknown := set(old) - set(caps):
            raise TypeError(f"UtilityPolicy got unexpected keyword arguments {sorted(unknown)}")
        caps.update(old)
        self.limits = CallLimits(
            lambda_tokens, lambda_seconds, caps["max_call_tokens"], caps["max_call_seconds"], quantile
        )

    def __repr__(self) -> str:
        lim = self.limits
        return f"UtilityPolicy(lambda_tokens={lim.lambda_tokens:g}, lambda_seconds={lim.lambda_seconds:g})"

    def choose(
        self, pred: Predictions, limits: CallLimits | None = None, allowed: Sequence[bool] | None = None
    ) -> np.ndarray:
        """Index of the chosen strategy for every query (vectorised).

        ``allowed`` masks strategies out for this call (a tool-calling step never uses beam
        search); when nothing fits, the cheapest allowed strategy is chosen.
        """
        limits = limits or self.limits
        u = utilities(pred, limits)
        ok = fits(pred, limits, allowed)
        masked = np.where(ok, u, -np.inf)
        chosen = masked.argmax(axis=1)
        none_fit = ~ok.any(axis=1)
        if none_fit.any():
            permitted = np.ones(len(pred.specs), dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
            cheapest = np.where(permitted[None, :], pred.tokens, np.inf)
            chosen[none_fit] = cheapest[none_fit].argmin(axis=1)
        return np.asarray(chosen)

    def decide(
        self, pred: Predictions, limits: CallLimits | None = None, allowed: Sequence[bool] | None = None
    ) -> list[Decision]:
        """A full, auditable `Decision` per query."""
        limits = limits or self.limits
        u, ok, chosen = utilities(pred, limits), fits(pred, limits, allowed), self.choose(pred, limits, allowed)
        return [
            Decision(
                spec=pred.specs[c],
                index=int(c),
                feasible=bool(ok[i].any()),
                limits=limits,
                specs=pred.specs,
                accuracy=tuple(float(x) for x in pred.accuracy[i]),
                tokens=tuple(float(x) for x in pred.tokens[i]),
                tokens_q90=tuple(float(x) for x in pred.tokens_q90[i]),
                seconds=tuple(float(x) for x in pred.seconds[i]),
                utility=tuple(float(x) for x in u[i]),
                fits=tuple(bool(x) for x in ok[i]),
            )
            for i, c in enumerate(chosen)
        ]

    def calibrate(
        self,
        pred: Predictions,
        *,
        target_mean_tokens: float | None = None,
        target_mean_seconds: float | None = None,
        cost: np.ndarray | None = None,
        iterations: int = 60,
    ) -> UtilityPolicy:
        """A copy whose lambda makes the mean cost of its choices on ``pred`` hit the target.

        Give exactly one target. The matching lambda (tokens or seconds) is found by bisection
        in log space; the other is kept. ``cost`` (queries x strategies), when given, is the
        measured cost to average instead of the predicted one.
        """
        if (target_mean_tokens is None) == (target_mean_seconds is None):
            raise InvalidRequestError("calibrate needs exactly one of target_mean_tokens, target_mean_seconds")
        key = "lambda_tokens" if target_mean_tokens is not None else "lambda_seconds"
        target = _check_cap("target", target_mean_tokens if target_mean_tokens is not None else target_mean_seconds)
        if target is None:
            raise InvalidRequestError("calibrate needs target_mean_tokens or target_mean_seconds")
        cost = np.asarray(
            cost if cost is not None else (pred.tokens if key == "lambda_tokens" else pred.seconds), dtype=float
        )
        rows = np.arange(len(cost))

        def mean_cost(lam: float) -> float:
            return float(cost[rows, self.choose(pred, replace(self.limits, **{key: lam}))].mean())

        lo, hi = 1e-9, 1e3
        if mean_cost(lo) <= target:  # even (almost) free compute stays under the target
            lam = 0.0
        elif mean_cost(hi) > target:  # the cheapest choices already cost more
            lam = hi
        else:
            for _ in range(iterations):
                mid = math.sqrt(lo * hi)
                lo, hi = (mid, hi) if mean_cost(mid) > target else (lo, mid)
            lam = hi
        out = UtilityPolicy()
        out.limits = replace(self.limits, **{key: lam})
        return out


class StaticPolicy:
    """Always the same strategy (by spec): the baseline every adaptive policy must beat."""

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def __repr__(self) -> str:
        return f"StaticPolicy({self.spec!r})"

    def choose(self, pred: Predictions, limits: CallLimits | None = None) -> np.ndarray:
        if self.spec not in pred.specs:
            raise InvalidRequestError(f"{self.spec!r} is not on the menu {list(pred.specs)}")
        return np.full(len(pred.accuracy), pred.specs.index(self.spec))


class OraclePolicy:
    """Hindsight: per query, the strategy with the best measured ``correct - lambda * cost``.

    ``correct`` and the costs are measured means (queries x strategies) from held-out traces;
    it cannot run on new queries, only bound what any policy could reach.
    """

    def __init__(self, correct: np.ndarray, tokens: np.ndarray, seconds: np.ndarray) -> None:
        self.correct, self.tokens, self.seconds = (np.asarray(a, dtype=float) for a in (correct, tokens, seconds))

    def choose(self, pred: Predictions | None = None, limits: CallLimits | None = None) -> np.ndarray:
        limits = limits or CallLimits()
        u = self.correct - limits.lambda_tokens * self.tokens - limits.lambda_seconds * self.seconds
        # Among equally good choices, take the cheapest in tokens.
        best = u.max(axis=1, keepdims=True)
        return np.asarray(np.where(np.isclose(u, best), -self.tokens, -np.inf).argmax(axis=1))
