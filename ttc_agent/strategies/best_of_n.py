"""`BestOfN`: sample n solutions in one batched request, then select one."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

from ttc_agent.backends.base import Completion, SamplingParams
from ttc_agent.errors import InvalidRequestError
from ttc_agent.strategies.base import Algorithm, Candidate, Choice, GenerateCall, Query, ScoreCall, Strategy
from ttc_agent.strategies.selection import SELECTIONS, confidence, select
from ttc_agent.validation import POSITIVE_INT, Interval, check_param
from ttc_agent.verifiers import Verifier
from ttc_agent.verifiers.base import Scores


class BestOfN(Strategy):
    """Sample ``n`` solutions in ONE backend request and select one.

    ``select`` is ``"verifier"`` (highest verifier score), ``"majority"`` (most frequent answer;
    ties broken by score), ``"weighted_majority"`` (largest sum of scores per answer) or
    ``"confident_majority"`` (majority among the ``keep`` share of samples with the highest
    confidence, DeepConf's offline filter; needs token logprobs from the backend);
    ``"verifier:FOLDER"`` selects with the `LearnedVerifier` saved in FOLDER. The verifier
    defaults to `LogprobVerifier` (free); pass another to the constructor or to ``run``.
    Every candidate carries its confidence whenever the backend returned token logprobs.

    Example:
        >>> BestOfN(8, select="majority").run("What is 23 + 19?", backend).answer
    """

    uses_verifier = True

    def __init__(self, n: int = 8, select: str = "majority", keep: float = 0.5, **kwargs: Any) -> None:
        check_param("n", n, POSITIVE_INT, owner="best_of_n")
        if isinstance(select, str) and select.startswith("verifier:"):
            select, kwargs["verifier"] = "verifier", "learned:" + select.split(":", 1)[1]
        if select not in SELECTIONS:
            raise InvalidRequestError(f"unknown selection {select!r}; expected one of {list(SELECTIONS)}")
        check_param("keep", keep, Interval(float, 0, 1, closed="right"), owner="best_of_n")
        super().__init__(**kwargs)
        if n > 1 and self.sampling.temperature == 0:
            raise InvalidRequestError(f"best_of_n({n}) needs temperature > 0 to draw different samples")
        self.n, self.select, self.keep = n, select, float(keep)

    @property
    def spec(self) -> str:
        extra = f", keep={self.keep:g}" if self.select == "confident_majority" else ""
        extra += f", verifier={self.verifier.name}" if self.verifier else ""
        return f"best_of_n({self.n}, select={self.select}{extra}{self.temperature_spec})"

    def _algorithm(self, query: Query, verifier: Verifier | None, params: SamplingParams) -> Algorithm:
        confident = self.select == "confident_majority"
        wants_logprobs = confident or bool(verifier and verifier.needs_logprobs)
        gen = yield GenerateCall(
            [query.prompt], params.with_(n=self.n, logprobs=wants_logprobs), require_logprobs=confident
        )
        candidates = yield from sampled_candidates(query, gen.completions, verifier)
        if not candidates:  # a deadline left no sample at all
            return Choice(Candidate("", None, None, 0, "deadline"), ())
        return Choice(select(candidates, self.select, self.keep), candidates)


def sampled_candidates(
    query: Query, comps: Sequence[Completion], verifier: Verifier | None
) -> Generator[ScoreCall, Scores, tuple[Candidate, ...]]:
    """Candidates of sampled completions, scored by ``verifier`` (one `ScoreCall`) when given,
    each with its confidence when the completion has token logprobs."""
    scores: list[float | None] = [None] * len(comps)
    if verifier is not None and comps:
        result = yield ScoreCall(query.question, [c.text for c in comps], [c.token_logprobs for c in comps])
        scores = list(result.values)
    return tuple(
        Candidate(
            c.text,
            query.extract(c.text),
            s,
            c.num_tokens,
            c.finish_reason,
            None if c.token_logprobs is None else confidence(c.token_logprobs),
        )
        for c, s in zip(comps, scores, strict=True)
    )
