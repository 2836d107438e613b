"""`LogprobVerifier`: the generator's own confidence, at no extra model call."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ttc_agent.backends.base import Backend
from ttc_agent.verifiers.base import BaseVerifier, Scores, TokenLogprobs, VerifierError

_MODES = ("mean", "min")


class LogprobVerifier(BaseVerifier):
    """Scores a solution by its tokens' log-probabilities from the generating call.

    ``mode="mean"`` gives ``exp(mean token logprob)`` (the geometric-mean token probability),
    ``mode="min"`` the probability of the least likely token. Both lie in (0, 1]. It costs no
    tokens; strategies ask the backend for logprobs when this verifier is in use.
    """

    needs_logprobs = True
    reads_tokens = False

    def __init__(self, mode: str = "mean") -> None:
        if mode not in _MODES:
            raise VerifierError(f"LogprobVerifier mode must be one of {_MODES}, got {mode!r}")
        self.mode = mode
        self.name = "logprob" if mode == "mean" else f"logprob:{mode}"

    def score(
        self, question: str, solutions: Sequence[str], *, logprobs: TokenLogprobs = None, backend: Backend | None = None
    ) -> Scores:
        if logprobs is None or len(logprobs) != len(solutions):
            raise VerifierError(
                f"verifier {self.name!r} needs the token logprobs of every solution; the backend returned none"
            )
        values = []
        for i, lp in enumerate(logprobs):
            if lp is None:
                raise VerifierError(f"verifier {self.name!r}: candidate {i} has no token logprobs")
            if not lp:
                values.append(1.0)  # nothing generated: no evidence against it
                continue
            agg = sum(lp) / len(lp) if self.mode == "mean" else min(lp)
            values.append(math.exp(agg))
        return Scores(tuple(values))
