"""`Predictions`: what the probes predict per query and strategy (accuracy, tokens and their
quantiles, seconds, rounds), the one thing the policy and the budget managers read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
from scipy.stats import norm

from ttc_agent.estimators.predictors import TOKENS_QUANTILE


@lru_cache(maxsize=64)
def _spread_ratio(q: float) -> float:
    """How many ``tokens_q90``-to-median log spreads the ``q`` quantile lies above the median
    (cached: budget checks ask for the same few quantiles on every call)."""
    return float(norm.ppf(q) / norm.ppf(TOKENS_QUANTILE))


@dataclass(frozen=True)
class Predictions:
    """Per query (rows) and strategy (columns): predicted accuracy, tokens, seconds, rounds.

    ``tokens`` counts prompt, completion and verifier tokens (median prediction);
    ``tokens_q90`` is a high quantile of the same, for hard budget checks
    (``tokens_quantile(q)`` gives another).
    """

    specs: tuple[str, ...]
    accuracy: np.ndarray
    tokens: np.ndarray
    tokens_q90: np.ndarray
    completion_tokens: np.ndarray
    seconds: np.ndarray
    rounds: np.ndarray

    FIELDS: ClassVar[tuple[str, ...]] = ("accuracy", "tokens", "tokens_q90", "completion_tokens", "seconds", "rounds")

    def take(self, rows: Any) -> Predictions:
        """The predictions of some queries (``rows``: indices or a slice)."""
        return Predictions(self.specs, **{f: getattr(self, f)[rows] for f in self.FIELDS})

    def take_strategies(self, columns: Sequence[int]) -> Predictions:
        """The predictions of some strategies (``columns``: indices into ``specs``), as for a
        menu without the others."""
        cols = list(columns)
        return Predictions(tuple(self.specs[j] for j in cols), **{f: getattr(self, f)[:, cols] for f in self.FIELDS})

    def tokens_quantile(self, q: float = TOKENS_QUANTILE) -> np.ndarray:
        """The ``q`` quantile of the tokens (``0.5 <= q < 1``): the token regressors model log
        tokens as normal around the median with one spread per strategy, which the median and
        ``tokens_q90`` pin down."""
        if q == TOKENS_QUANTILE:
            return self.tokens_q90
        median, high = np.log1p(self.tokens), np.log1p(self.tokens_q90)
        return np.asarray(np.expm1(median + (high - median) * _spread_ratio(q)).clip(min=0))

    def seconds_quantile(self, q: float = TOKENS_QUANTILE) -> np.ndarray:
        """The ``q`` quantile of the seconds: seconds scaled by the tokens' quantile-to-median
        ratio (latency grows with the tokens generated)."""
        return np.asarray(self.seconds * np.maximum(self.tokens_quantile(q) / np.maximum(self.tokens, 1.0), 1.0))

    @property
    def seconds_q90(self) -> np.ndarray:
        """The seconds at the tokens' default quantile (`seconds_quantile`)."""
        return self.seconds_quantile(TOKENS_QUANTILE)
