"""`BeamSearch`: step-level search guided by a verifier or process reward model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ttc_agent.backends.base import SamplingParams
from ttc_agent.errors import InvalidRequestError
from ttc_agent.strategies.base import Algorithm, Candidate, Choice, GenerateCall, Query, ScoreCall, Strategy
from ttc_agent.validation import POSITIVE_INT, check_param
from ttc_agent.verifiers import Verifier

_STEP_TOKENS = 96  # the default cap on one step's tokens


@dataclass(frozen=True)
class _Beam:
    text: str
    logprobs: tuple[float, ...]
    tokens: int
    finished: bool
    finish_reason: str
    score: float | None = None


class BeamSearch(Strategy):
    """Step-level beam search (Snell et al. 2024; Hugging Face's search-and-learn).

    Round 1 samples ``width * expand`` first steps (a step ends at ``step_delimiter``). Each
    partial solution is scored by the verifier; the best ``width`` unfinished ones are kept and
    each is extended by ``expand`` samples of its next step, all in one batched request. A beam
    finishes at end of turn or when it reaches ``max_tokens``. The search stops once ``width``
    beams have finished, none is left, or after ``max_steps`` rounds; it returns the best
    finished beam (or the best unfinished one if none finished).

    The verifier defaults to `LogprobVerifier`; a `PRMVerifier` is the classic choice.
    """

    uses_verifier = True

    def __init__(
        self,
        width: int = 4,
        expand: int = 4,
        max_steps: int = 8,
        step_delimiter: str = "\n\n",
        max_step_tokens: int = _STEP_TOKENS,
        **kwargs: Any,
    ) -> None:
        for name, value in (
            ("width", width),
            ("expand", expand),
            ("max_steps", max_steps),
            ("max_step_tokens", max_step_tokens),
        ):
            check_param(name, value, POSITIVE_INT, owner="beam search")
        if not isinstance(step_delimiter, str) or not step_delimiter:
            raise InvalidRequestError(f"step_delimiter must be a non-empty string, got {step_delimiter!r}")
        super().__init__(**kwargs)
        if self.sampling.temperature == 0:
            raise InvalidRequestError("beam search needs temperature > 0 to draw different steps")
        self.width, self.expand, self.max_steps = width, expand, max_steps
        self.step_delimiter, self.max_step_tokens = step_delimiter, max_step_tokens

    @property
    def spec(self) -> str:
        extra = "" if self.max_step_tokens == _STEP_TOKENS else f", max_step_tokens={self.max_step_tokens}"
        extra += f", verifier={self.verifier.name}" if self.verifier else ""
        return (
            f"beam(width={self.width}, expand={self.expand}, max_steps={self.max_steps}{extra}{self.temperature_spec})"
        )

    def _algorithm(self, query: Query, verifier: Verifier | None, params: SamplingParams) -> Algorithm:
        budget = params.max_tokens
        step = params.with_(
            stop=(*params.stop, self.step_delimiter),
            max_tokens=min(self.max_step_tokens, budget),
            logprobs=verifier is not None and verifier.needs_logprobs,
        )
        active = [_Beam("", (), 0, False, "stop")]
        finished: list[_Beam] = []
        for round_no in range(self.max_steps):
            n = self.width * self.expand if round_no == 0 else self.expand
            # No beam may pass max_tokens: the round's cap is what the longest beam has left.
            room = budget - max(b.tokens for b in active)
            seed = None if step.seed is None else step.seed + round_no  # fresh noise each round
            params_now = step.with_(n=n, max_tokens=max(1, min(step.max_tokens, room)), seed=seed)
            gen = yield GenerateCall([query.continued(b.text) for b in active], params_now)
            if gen is None:  # the call's token cap leaves no room for another round
                break
            children = []
            for beam, result in zip(active, gen.results, strict=True):
                for c in result.completions:
                    children.append(self._child(beam, c, budget))
            if not children:
                break
            scores = yield ScoreCall(query.question, [b.text for b in children], [b.logprobs for b in children])
            children = [_Beam(**{**b.__dict__, "score": s}) for b, s in zip(children, scores.values, strict=True)]
            children.sort(key=_beam_score, reverse=True)
            finished += [b for b in children if b.finished]
            active = [b for b in children if not b.finished][: self.width]
            if len(finished) >= self.width or not active:
                break
        pool = finished or [_Beam(**{**b.__dict__, "finish_reason": "length"}) for b in active]
        candidates = tuple(
            Candidate(b.text, query.extract(b.text), b.score, b.tokens, b.finish_reason)
            for b in sorted(pool, key=_beam_score, reverse=True)
        )
        return Choice(candidates[0], candidates)

    def _child(self, beam: _Beam, c: Any, budget: int) -> _Beam:
        at_step_end = c.stop_string == self.step_delimiter
        text = beam.text + c.text + (self.step_delimiter if at_step_end else "")
        tokens = beam.tokens + c.num_tokens
        logprobs = beam.logprobs + tuple(c.token_logprobs or ())
        ended = c.finish_reason == "stop" and not at_step_end
        out_of_room = tokens >= budget or c.finish_reason == "deadline"
        reason = "stop" if ended else ("deadline" if c.finish_reason == "deadline" else "length")
        return _Beam(text.rstrip() if ended or out_of_room else text, logprobs, tokens, ended or out_of_room, reason)


def _beam_score(beam: _Beam) -> float:
    return float("-inf") if beam.score is None else beam.score
