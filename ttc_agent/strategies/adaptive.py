"""`AdaptiveSC`: self-consistency that stops sampling once the majority answer is settled.

Adaptive-Consistency (Aggarwal et al. 2023, "Let's Sample Step by Step"): draw samples in
rounds of ``batch`` (one batched request each) and, after each round, stop when the posterior
probability that the leading answer stays ahead of the runner-up reaches ``threshold``, or at
``max_n`` samples. Easy questions, where the first samples agree, cost one round; hard ones
cost up to ``max_n / batch`` sequential rounds, the same tokens-against-latency tension the
policy prices for beam search.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from scipy.stats import beta

from ttc_agent.backends.base import SamplingParams
from ttc_agent.errors import InvalidRequestError
from ttc_agent.strategies.base import Algorithm, Candidate, Choice, GenerateCall, Query, Strategy
from ttc_agent.strategies.best_of_n import sampled_candidates
from ttc_agent.strategies.selection import answer_groups, majority
from ttc_agent.validation import POSITIVE_INT, Interval, check_param
from ttc_agent.verifiers import Verifier

#: Seed offset between rounds, so each round draws fresh samples when a seed is set.
_ROUND_SEED_STEP = 7919


def majority_settled(candidates: Sequence[Candidate]) -> float:
    """The posterior probability that the most frequent answer among ``candidates`` is the
    majority answer of the model's distribution rather than the runner-up: ``P(p1 > p2)`` for
    ``(p1, p2) ~ Beta(v1 + 1, v2 + 1)`` given their vote counts ``v1 >= v2`` (the Beta stopping
    rule of Adaptive-Consistency). Candidates without an answer do not vote; with no votes the
    probability is 0.5."""
    counts = sorted((len(group) for group in answer_groups(candidates).values()), reverse=True) + [0, 0]
    return float(beta.sf(0.5, counts[0] + 1, counts[1] + 1))


class AdaptiveSC(Strategy):
    """Majority vote over samples drawn ``batch`` at a time until the answer is settled.

    Args:
        max_n: the most samples it draws.
        batch: samples per round (one batched request each); at most ``max_n``.
        threshold: stop once `majority_settled` reaches it; in (0.5, 1).

    The outcome's ``cost.rounds`` counts the rounds, its candidates are every sample drawn, and
    ``stop_reason`` is ``"converged"``, ``"max_n"``, ``"cap"`` (a token cap left no room for the
    next round) or ``"cut"`` (the deadline stopped a round: the answer so far is returned).

    Example:
        >>> AdaptiveSC(max_n=16, batch=4).run("What is 23 + 19?", backend).cost.rounds
    """

    def __init__(self, max_n: int = 16, batch: int = 4, threshold: float = 0.95, **kwargs: Any) -> None:
        check_param("max_n", max_n, POSITIVE_INT, owner="adaptive_sc")
        check_param("batch", batch, Interval(int, 1, max_n), owner="adaptive_sc")
        check_param("threshold", threshold, Interval(float, 0.5, 1, closed="neither"), owner="adaptive_sc")
        super().__init__(**kwargs)
        if self.sampling.temperature == 0:
            raise InvalidRequestError("adaptive_sc needs temperature > 0 to draw different samples")
        self.max_n, self.batch, self.threshold = max_n, batch, float(threshold)

    @property
    def spec(self) -> str:
        return (
            f"adaptive_sc(max_n={self.max_n}, batch={self.batch}, threshold={self.threshold:g}{self.temperature_spec})"
        )

    def _algorithm(self, query: Query, verifier: Verifier | None, params: SamplingParams) -> Algorithm:
        candidates: list[Candidate] = []
        stop = "max_n"
        round_no = 0
        while len(candidates) < self.max_n:
            n = min(self.batch, self.max_n - len(candidates))
            seed = None if params.seed is None else params.seed + _ROUND_SEED_STEP * round_no
            gen = yield GenerateCall([query.prompt], params.with_(n=n, seed=seed))
            if gen is None:  # the call's token cap leaves no room for another round
                stop = "cap"
                break
            round_no += 1
            drawn = yield from sampled_candidates(query, gen.completions, None)
            candidates.extend(drawn)
            if len(drawn) < n or any(c.finish_reason == "deadline" for c in drawn):
                stop = "cut"
                break
            if majority_settled(candidates) >= self.threshold:
                stop = "converged"
                break
        if not candidates:
            return Choice(Candidate("", None, None, 0, "deadline"), (), stop)
        return Choice(majority(candidates), tuple(candidates), stop)
