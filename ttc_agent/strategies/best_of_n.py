"""`BestOfN`: sample n solutions in one batched request, then select one."""

from __future__ import annotations

from typing import Any

from ttc_agent.errors import InvalidRequestError
from ttc_agent.strategies.base import Algorithm, Candidate, Choice, GenerateCall, Query, ScoreCall, Strategy
from ttc_agent.strategies.selection import SELECTIONS, select


class BestOfN(Strategy):
    """Sample ``n`` solutions in ONE backend request and select one.

    ``select`` is ``"verifier"`` (highest verifier score), ``"majority"`` (most frequent answer;
    ties broken by score) or ``"weighted_majority"`` (largest sum of scores per answer);
    ``"verifier:FOLDER"`` selects with the `LearnedVerifier` saved in FOLDER. The verifier
    defaults to `LogprobVerifier` (free); pass another to the constructor or to ``run``.

    Example:
        >>> BestOfN(8, select="majority").run("What is 23 + 19?", backend).answer
    """

    uses_verifier = True

    def __init__(self, n: int = 8, select: str = "majority", **kwargs: Any) -> None:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise InvalidRequestError(f"best_of_n needs n >= 1, got {n!r}")
        if isinstance(select, str) and select.startswith("verifier:"):
            select, kwargs["verifier"] = "verifier", "learned:" + select.split(":", 1)[1]
        if select not in SELECTIONS:
            raise InvalidRequestError(f"unknown selection {select!r}; expected one of {list(SELECTIONS)}")
        super().__init__(**kwargs)
        if n > 1 and self.sampling.temperature == 0:
            raise InvalidRequestError(f"best_of_n({n}) needs temperature > 0 to draw different samples")
        self.n, self.select = n, select

    @property
    def spec(self) -> str:
        extra = f", verifier={self.verifier.name}" if self.verifier else ""
        return f"best_of_n({self.n}, select={self.select}{extra})"

    def _algorithm(self, query: Query, verifier, params) -> Algorithm:
        gen = yield GenerateCall(
            [query.prompt], params.with_(n=self.n, logprobs=bool(verifier and verifier.needs_logprobs))
        )
        comps = gen.completions
        texts = [c.text for c in comps]
        scores = [None] * len(comps)
        if verifier is not None and comps:
            result = yield ScoreCall(query.question, texts, [c.token_logprobs for c in comps])
            scores = list(result.values)
        candidates = tuple(
            Candidate(c.text, query.extract(c.text), s, c.num_tokens, c.finish_reason)
            for c, s in zip(comps, scores, strict=True)
        )
        if not candidates:  # a deadline left no sample at all
            return Choice(Candidate("", None, None, 0, "deadline"), ())
        return Choice(select(candidates, self.select), candidates)
