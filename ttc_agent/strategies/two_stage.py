"""`TwoStage`: sample a few, look at what they say, and pay for more only where it is worth it.

Stage 1 draws ``k`` samples in one round. What they produced (`stage_signals`: how many agree,
the vote margin, distinct answers, samples without an answer or cut by the cap, confidence,
length) goes to a `Continuation`, which picks how many more samples to draw in one more round,
none included: ``options`` are 0, ``k`` and ``more`` (the cap). The answer is the majority over
every sample drawn.

The continuation is where prices enter: `ttc_agent.probes.stage2.Stage2Policy` predicts each
option's accuracy from the signals (a model fitted on trace pools) and its tokens and seconds
from the first stage's (another round costs a whole round's seconds), and picks the option of
highest ``accuracy - lambda_tokens * tokens - lambda_seconds * seconds``. Without one, the safe
default `AgreementRule` stops when every stage-1 sample with an answer agrees and otherwise
draws the cap, the fixed rule adaptive self-consistency applies round after round.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ttc_agent.backends.base import SamplingParams
from ttc_agent.errors import InvalidRequestError
from ttc_agent.strategies.base import Algorithm, Candidate, Choice, GenerateCall, Query, Strategy
from ttc_agent.strategies.best_of_n import sampled_candidates
from ttc_agent.strategies.selection import answer_groups, majority
from ttc_agent.validation import Interval, check_param
from ttc_agent.verifiers import Verifier

#: The stage-1 signals, in `stage_signals` order.
SIGNALS = (
    "agreement",
    "margin",
    "distinct",
    "no_answer",
    "truncated",
    "mean_confidence",
    "min_confidence",
    "mean_length",
)
#: Seed offset of the second round, so it draws fresh samples when a seed is set.
_SECOND_ROUND_SEED = 104_729


def stage_signals(candidates: Sequence[Candidate], max_tokens: int) -> np.ndarray:
    """What a first stage's samples say, as one row of `SIGNALS`: the share agreeing with the
    most frequent answer and its margin over the runner-up (both over all samples), distinct
    answers per sample, the shares with no answer and cut by the per-sample cap, the mean and
    lowest confidence (0 where the backend gave no logprobs) and the mean length as a share of
    the cap."""
    n = max(len(candidates), 1)
    counts = sorted((len(g) for g in answer_groups(candidates).values()), reverse=True) + [0, 0]
    confidences = [c.confidence for c in candidates if c.confidence is not None and np.isfinite(c.confidence)]
    return np.array(
        [
            counts[0] / n,
            (counts[0] - counts[1]) / n,
            len(counts[:-2]) / n,
            sum(c.answer is None for c in candidates) / n,
            sum(c.finish_reason == "length" for c in candidates) / n,
            float(np.mean(confidences)) if confidences else 0.0,
            float(np.min(confidences)) if confidences else 0.0,
            float(np.mean([c.num_tokens for c in candidates])) / max_tokens if candidates else 0.0,
        ]
    )


@dataclass(frozen=True)
class StageOne:
    """What a continuation sees: the signals, the options (more samples to draw, 0 first), the
    samples the first stage drew, the prompt's tokens, and the first stage's mean tokens per
    sample and measured seconds."""

    signals: np.ndarray
    options: tuple[int, ...]
    drawn: int
    prompt_tokens: int
    mean_tokens: float
    seconds: float


class Continuation(Protocol):
    """Chooses how many more samples a two-stage strategy draws after its first stage."""

    def choose(self, stage: StageOne) -> int:
        """The index into ``stage.options`` to take (0: stop)."""
        ...


@dataclass(frozen=True)
class AgreementRule:
    """The safe default: stop when at least ``threshold`` of the stage-1 samples agree on an
    answer, else draw the most the options allow."""

    threshold: float = 1.0

    def choose(self, stage: StageOne) -> int:
        return 0 if stage.signals[0] >= self.threshold else len(stage.options) - 1


class TwoStage(Strategy):
    """Majority vote over ``k`` samples, continued by ``k`` or up to ``more`` samples in one more
    round when the `Continuation` says so.

    Args:
        k: stage-1 samples (one round); at least 2.
        more: the most samples the second stage draws; at least ``k``.
        continuation: chooses the second stage from the first's signals (`AgreementRule()`
            by default; the engine sets a priced `Stage2Policy` from the probe bundle).

    The outcome's ``stop_reason`` is ``"stopped"`` or ``"continued"`` (``"cap"`` or ``"cut"`` when a
    token cap or the deadline stopped it), and ``stages`` holds the stage-1 signals, the options
    and the one taken.

    Example:
        >>> TwoStage(k=4, more=12, temperature=0.3).run("What is 23 + 19?", backend).stages
    """

    def __init__(self, k: int = 4, more: int = 12, continuation: Continuation | None = None, **kwargs: Any) -> None:
        check_param("k", k, Interval(int, 2, None), owner="two_stage")
        check_param("more", more, Interval(int, k, None), owner="two_stage")
        super().__init__(**kwargs)
        if self.sampling.temperature == 0:
            raise InvalidRequestError("two_stage needs temperature > 0 to draw different samples")
        self.k, self.more = k, more
        self.continuation: Continuation = continuation or AgreementRule()

    @property
    def spec(self) -> str:
        return f"two_stage(k={self.k}, more={self.more}{self.temperature_spec})"

    @property
    def options(self) -> tuple[int, ...]:
        """The second stage's sample counts to choose from: 0 (stop), ``k`` and ``more``."""
        return tuple(sorted({0, self.k, self.more}))

    def with_continuation(self, continuation: Continuation) -> TwoStage:
        """A copy of this strategy deciding its second stage with ``continuation``."""
        twin = copy.copy(self)
        twin.continuation = continuation
        return twin

    def _algorithm(self, query: Query, verifier: Verifier | None, params: SamplingParams) -> Algorithm:
        gen = yield GenerateCall([query.prompt], params.with_(n=self.k, logprobs=True))
        first = yield from sampled_candidates(query, gen.completions, None)
        if len(first) < self.k or any(c.finish_reason == "deadline" for c in first):
            return (
                Choice(majority(first), first, "cut")
                if first
                else Choice(Candidate("", None, None, 0, "deadline"), (), "cut")
            )
        stage = StageOne(
            stage_signals(first, params.max_tokens),
            self.options,
            self.k,
            gen.prompt_tokens,
            float(np.mean([c.num_tokens for c in first])),
            gen.seconds,
        )
        taken = self.continuation.choose(stage)
        record = {"signals": dict(zip(SIGNALS, map(float, stage.signals), strict=True)), "options": list(self.options)}
        m = self.options[taken]
        if m == 0:
            return Choice(majority(first), first, "stopped", {**record, "taken": 0})
        seed = None if params.seed is None else params.seed + _SECOND_ROUND_SEED
        gen = yield GenerateCall([query.prompt], params.with_(n=m, logprobs=True, seed=seed))
        if gen is None:  # the call's token cap leaves no room for the second round
            return Choice(majority(first), first, "cap", {**record, "taken": 0})
        second = yield from sampled_candidates(query, gen.completions, None)
        stop = "cut" if any(c.finish_reason == "deadline" for c in second) else "continued"
        both = (*first, *second)
        return Choice(majority(both), both, stop, {**record, "taken": m})
