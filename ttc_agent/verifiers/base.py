"""The `Verifier` protocol: score whole or partial solutions of a question.

Scores are floats where higher means "more likely right"; the built-in verifiers return
probabilities in [0, 1]. A verifier that raises, or returns NaN or infinity, produces a
`VerifierError` naming the verifier and the candidate, never a silently wrong choice.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ttc_agent.backends.base import Backend
from ttc_agent.errors import TTCError

#: Per solution, the log-probabilities of its generated tokens (None where the backend returned
#: none); None when logprobs were not asked for.
TokenLogprobs = Sequence[Sequence[float] | None] | None


class VerifierError(TTCError):
    """A verifier failed or returned an unusable score."""


@dataclass(frozen=True)
class Scores:
    """A verifier's scores for a list of solutions, and what computing them cost."""

    values: tuple[float, ...]
    tokens: int = 0
    seconds: float = 0.0


@runtime_checkable
class Verifier(Protocol):
    """Scores solutions (finished or partial) of one question.

    ``needs_logprobs`` tells strategies to ask the backend for token log-probabilities, which
    arrive in ``logprobs`` (one sequence per solution). ``backend`` is the strategy's backend,
    for verifiers that prompt a model.
    """

    name: str
    needs_logprobs: bool

    def score(
        self,
        question: str,
        solutions: Sequence[str],
        *,
        logprobs: TokenLogprobs = None,
        backend: Backend | None = None,
    ) -> Scores: ...

    async def ascore(
        self,
        question: str,
        solutions: Sequence[str],
        *,
        logprobs: TokenLogprobs = None,
        backend: Backend | None = None,
    ) -> Scores: ...


class BaseVerifier:
    """Helpers shared by the built-in verifiers: a default ``ascore`` and score checking."""

    name = "verifier"
    needs_logprobs = False
    #: Whether scoring runs a model over the solutions (and so costs verifier tokens); a
    #: strategy under a token cap reserves room for it.
    reads_tokens = True

    def score(
        self, question: str, solutions: Sequence[str], *, logprobs: TokenLogprobs = None, backend: Backend | None = None
    ) -> Scores:
        raise NotImplementedError

    async def ascore(
        self, question: str, solutions: Sequence[str], *, logprobs: TokenLogprobs = None, backend: Backend | None = None
    ) -> Scores:
        """Runs ``score`` in a worker thread."""
        return await asyncio.to_thread(self.score, question, solutions, logprobs=logprobs, backend=backend)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def check_scores(name: str, values: Sequence[Any], expected: int) -> tuple[float, ...]:
    """Return ``values`` as floats, or raise `VerifierError` if any is missing or not finite."""
    if len(values) != expected:
        raise VerifierError(f"verifier {name!r} returned {len(values)} scores for {expected} solutions")
    out = []
    for i, v in enumerate(values):
        try:
            f = float(v)
        except (TypeError, ValueError) as exc:
            raise VerifierError(f"verifier {name!r} gave candidate {i} a score that is not a number: {v!r}") from exc
        if not math.isfinite(f):
            raise VerifierError(f"verifier {name!r} gave candidate {i} the score {f!r}; scores must be finite")
        out.append(f)
    return tuple(out)


class CallableVerifier(BaseVerifier):
    """Wraps any function ``(question, partial_solution) -> float`` as a verifier.

    Example:
        >>> CallableVerifier(lambda q, s: 1.0 if "42" in s else 0.0)
    """

    reads_tokens = False

    def __init__(self, fn: Callable[[str, str], float], name: str | None = None) -> None:
        if not callable(fn):
            raise VerifierError(f"CallableVerifier needs a callable, got {fn!r}")
        self.fn = fn
        self.name = name or str(getattr(fn, "__name__", "callable"))

    def score(
        self, question: str, solutions: Sequence[str], *, logprobs: TokenLogprobs = None, backend: Backend | None = None
    ) -> Scores:
        started = time.perf_counter()
        values = []
        for i, s in enumerate(solutions):
            try:
                values.append(self.fn(question, s))
            except Exception as exc:
                raise VerifierError(f"verifier {self.name!r} raised on candidate {i}: {exc!r}") from exc
        return Scores(check_scores(self.name, values, len(solutions)), seconds=time.perf_counter() - started)
