"""Predictions under another per-sample token cap than the one the traces were made at.

A probe bundle's token and seconds predictions describe its strategies at the menu's per-sample
cap (``max_tokens``, the traced cap). A caller may ask for another cap: the strategies then run
with it, and the predictions must describe that run, or a budget reserves too little (a higher
cap) or the policy overprices (a lower one).

The traces tell how many samples of each strategy's runs ended at the traced cap (`length_cuts`).
Under a higher cap those samples run on: each is predicted to run halfway to the new cap at the
median and all the way at the high quantile (``tokens_q90``), the samples that finished are
unchanged. Under a lower cap no sample runs past it: the completion tokens are at most the
samples' count times the new cap. Seconds follow the completion tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Where a sample cut at the traced cap is predicted to end under a higher cap, as the share of
#: the extra room it uses: half at the median, all of it at the high quantile.
MEDIAN_SHARE, HIGH_SHARE = 0.5, 1.0


def length_cuts(runs: Sequence[Sequence[Mapping[str, Any]]]) -> float:
    """The mean number of samples per run that ended at the per-sample cap (``finish ==
    "length"``), over the trace runs of one strategy (a list of runs per problem)."""
    counts = [sum(c.get("finish") == "length" for c in r.get("candidates", ())) for rs in runs for r in rs]
    return float(np.mean(counts)) if counts else 0.0


def under_cap(
    out: dict[str, np.ndarray],
    traced: Sequence[int],
    cap: int,
    cuts: np.ndarray,
    samples: np.ndarray,
) -> dict[str, np.ndarray]:
    """Token predictions (``out``: ``tokens``, ``tokens_q90``, ``completion_tokens``, queries x
    strategies) moved from each strategy's ``traced`` per-sample cap to ``cap``.

    Args:
        out: the predictions at the traced caps.
        traced: each strategy's traced per-sample cap.
        cap: the per-sample cap the call runs with.
        cuts: each strategy's mean samples per run that ended at the traced cap (`length_cuts`;
            broadcast against ``samples``).
        samples: each query's and strategy's predicted samples in all (an upper bound on cuts).

    Returns:
        A copy of ``out`` with the three token fields moved (seconds are left to the caller,
        which predicts them from the completion tokens).
    """
    traced_arr = np.asarray(traced, dtype=float)
    extra = np.maximum(cap - traced_arr, 0.0)
    cut = np.minimum(cuts, samples)
    completion = out["completion_tokens"]
    lower = np.minimum(completion, samples * cap)  # a lower cap: no sample runs past it
    median_completion = np.where(cap >= traced_arr, completion + MEDIAN_SHARE * cut * extra, lower)
    high_delta = np.where(cap >= traced_arr, HIGH_SHARE * cut * extra, lower - completion)
    moved = dict(out)
    moved["completion_tokens"] = median_completion
    moved["tokens"] = np.maximum(out["tokens"] + (median_completion - completion), 0.0)
    moved["tokens_q90"] = np.maximum(out["tokens_q90"] + high_delta, moved["tokens"])
    return moved
