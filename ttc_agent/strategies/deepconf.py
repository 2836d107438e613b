"""`DeepConf`: confidence-filtered voting with online early stopping (Fu et al. 2025, "Deep
Think with Confidence").

A warm-up round of ``warmup`` samples sets a confidence floor: the ``1 - keep`` quantile of
their confidences (`ttc_agent.strategies.selection.confidence`). The second round draws the
other ``n - warmup`` samples with that floor as ``SamplingParams.min_confidence``: a backend
that can stop one sequence (in-process vLLM) cuts each sample the moment a window of its tokens
falls below the floor, which is where the tokens are saved; other backends generate it whole.
Either way the vote is the same: a majority over the warm-up samples and the second round's
samples whose confidence reaches the floor.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ttc_agent.backends.base import SamplingParams
from ttc_agent.errors import InvalidRequestError
from ttc_agent.strategies.base import Algorithm, Candidate, Choice, GenerateCall, Query, Strategy
from ttc_agent.strategies.best_of_n import sampled_candidates
from ttc_agent.strategies.selection import CONFIDENCE_WINDOW, majority
from ttc_agent.validation import POSITIVE_INT, Interval, check_param
from ttc_agent.verifiers import Verifier

#: Seed offset of the second round, so it draws fresh samples when a seed is set.
_SECOND_ROUND_SEED = 7919


class DeepConf(Strategy):
    """Confidence-filtered majority vote whose second round stops unconfident samples early.

    Args:
        n: samples in all (warm-up included).
        warmup: samples of the first round, which set the confidence floor; fewer than ``n``.
        keep: the share of warm-up samples at or above the floor (0.9: DeepConf-high, a
            lenient floor; 0.1: DeepConf-low, a strict one); in (0, 1].

    Needs token logprobs (`LogprobsUnavailableError` from a backend without them). The outcome's
    candidates are every sample, cut ones with ``finish_reason="low_confidence"``;
    ``stop_reason`` is ``"done"``, ``"cap"`` (a token cap left no room for the second round:
    the warm-up vote is returned) or ``"cut"`` (the deadline stopped a round).

    Example:
        >>> DeepConf(n=16, warmup=4, keep=0.9).run("What is 23 + 19?", vllm_backend).candidates
    """

    def __init__(self, n: int = 16, warmup: int = 4, keep: float = 0.9, **kwargs: Any) -> None:
        check_param("n", n, Interval(int, 2, None), owner="deepconf")
        check_param("warmup", warmup, POSITIVE_INT, owner="deepconf")
        if warmup >= n:
            raise InvalidRequestError(f"deepconf: warmup must be smaller than n={n}, got {warmup}")
        check_param("keep", keep, Interval(float, 0, 1, closed="right"), owner="deepconf")
        super().__init__(**kwargs)
        if self.sampling.temperature == 0:
            raise InvalidRequestError("deepconf needs temperature > 0 to draw different samples")
        self.n, self.warmup, self.keep = n, warmup, float(keep)

    @property
    def spec(self) -> str:
        return f"deepconf(n={self.n}, warmup={self.warmup}, keep={self.keep:g}{self.temperature_spec})"

    def _algorithm(self, query: Query, verifier: Verifier | None, params: SamplingParams) -> Algorithm:
        first = params.with_(n=self.warmup, logprobs=True)
        gen = yield GenerateCall([query.prompt], first, require_logprobs=True)
        warm = yield from sampled_candidates(query, gen.completions, None)
        if not warm:
            return Choice(Candidate("", None, None, 0, "deadline"), (), "cut")
        if len(warm) < self.warmup or any(c.finish_reason == "deadline" for c in warm):
            return Choice(majority(warm), warm, "cut")
        floor = float(np.quantile([c.confidence for c in warm], 1 - self.keep))
        seed = None if params.seed is None else params.seed + _SECOND_ROUND_SEED
        second = params.with_(
            n=self.n - self.warmup, logprobs=True, seed=seed, min_confidence=floor, confidence_window=CONFIDENCE_WINDOW
        )
        gen = yield GenerateCall([query.prompt], second, require_logprobs=True)
        if gen is None:  # the call's token cap leaves no room for the second round
            return Choice(majority(warm), warm, "cap")
        more = yield from sampled_candidates(query, gen.completions, None)
        # Confidence is the same whether the backend cut a sample or generated it whole.
        kept = [c for c in more if c.confidence is not None and c.confidence >= floor]
        stop = "cut" if any(c.finish_reason == "deadline" for c in more) else "done"
        return Choice(majority([*warm, *kept]), (*warm, *more), stop)
