"""`JudgeVerifier`: a model asked whether a solution is correct; the score is P("Yes")."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from ttc_agent.backends.base import Backend, Generation, SamplingParams
from ttc_agent.verifiers.base import BaseVerifier, Scores, TokenLogprobs, VerifierError

DEFAULT_TEMPLATE = (
    "Here is a question and a proposed solution.\n\nQuestion: {question}\n\nProposed solution: {solution}\n\n"
    "Is the proposed solution correct? Answer with Yes or No."
)


class JudgeVerifier(BaseVerifier):
    """Asks a judge model "is this correct?" and reads the probability of its "Yes".

    All solutions are judged in one batched request of one greedy token each, with logprobs.
    The score is ``p`` when that token is "Yes", ``1 - p`` when it is "No", and 0.5 when the
    judge says neither (the backends report the chosen token's probability, not the whole
    distribution). Judge tokens count as verifier tokens.

    Args:
        backend: the judge's backend; ``None`` uses the strategy's own backend (the same model).
        template: the judge prompt, with ``{question}`` and ``{solution}`` fields.
    """

    def __init__(self, backend: Any = None, template: str = DEFAULT_TEMPLATE) -> None:
        if "{question}" not in template or "{solution}" not in template:
            raise VerifierError(f"the judge template needs {{question}} and {{solution}} fields: {template!r}")
        self.backend = backend
        self.template = template
        self.name = "judge"

    def _prompts(self, question: str, solutions: Sequence[str]) -> list[list[dict[str, str]]]:
        return [
            [{"role": "user", "content": self.template.format(question=question, solution=s or "(empty)")}]
            for s in solutions
        ]

    def _backend(self, backend: Any) -> Any:
        judge = self.backend or backend
        if judge is None:
            raise VerifierError("JudgeVerifier has no backend: give it one, or use it inside a strategy")
        return judge

    def score(
        self, question: str, solutions: Sequence[str], *, logprobs: TokenLogprobs = None, backend: Backend | None = None
    ) -> Scores:
        started = time.perf_counter()
        gen = self._backend(backend).generate(self._prompts(question, solutions), _PARAMS)
        return self._scores(gen, time.perf_counter() - started)

    async def ascore(
        self, question: str, solutions: Sequence[str], *, logprobs: TokenLogprobs = None, backend: Backend | None = None
    ) -> Scores:
        started = time.perf_counter()
        gen = await self._backend(backend).agenerate(self._prompts(question, solutions), _PARAMS)
        return self._scores(gen, time.perf_counter() - started)

    @staticmethod
    def _scores(gen: Generation, seconds: float) -> Scores:
        values = []
        for r in gen.results:
            c = r.completions[0]
            p = math.exp(c.token_logprobs[0]) if c.token_logprobs else 0.5
            word = c.text.strip().lower()
            values.append(p if word.startswith("yes") else 1 - p if word.startswith("no") else 0.5)
        return Scores(tuple(values), tokens=gen.prompt_tokens + gen.completion_tokens, seconds=seconds)


_PARAMS = SamplingParams(max_tokens=1, temperature=0.0, logprobs=True)
