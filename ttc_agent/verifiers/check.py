"""`CheckVerifier`: score candidates by executing a check (a tool call, unit tests, a schema)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ttc_agent.backends.base import Backend
from ttc_agent.verifiers.base import BaseVerifier, Scores, TokenLogprobs, VerifierError

PASS, FAIL = 1.0, 0.0


class CheckVerifier(BaseVerifier):
    """Runs ``check(question, candidate)`` on every candidate: ``True`` scores 1, ``False`` 0.

    A check that returns ``None`` cannot tell; with ``on_error="unknown"`` a check that raises
    is treated the same. Such candidates get ``unknown_score`` (0.5 by default: ranked below
    every passing candidate and above every failing one), so selection handles them explicitly.
    With ``on_error="raise"`` a raising check stops the call with a `VerifierError`. The
    check's own wall-clock time is counted as verifier seconds.

    Example (the ReAct example's calculator as checker):
        >>> CheckVerifier(lambda q, s: recompute(q) == extract_answer(s))
    """

    reads_tokens = False

    def __init__(
        self,
        check: Callable[[str, str], bool | None],
        *,
        on_error: str = "unknown",
        unknown_score: float = 0.5,
        name: str | None = None,
    ) -> None:
        if not callable(check):
            raise VerifierError(f"CheckVerifier needs a callable check, got {check!r}")
        if on_error not in ("unknown", "raise"):
            raise VerifierError(f"on_error must be 'unknown' or 'raise', got {on_error!r}")
        if not FAIL < unknown_score < PASS:
            raise VerifierError(f"unknown_score must lie strictly between {FAIL} and {PASS}, got {unknown_score!r}")
        self.check, self.on_error, self.unknown_score = check, on_error, float(unknown_score)
        self.name = name or f"check:{getattr(check, '__name__', 'check')}"

    def score(
        self, question: str, solutions: Sequence[str], *, logprobs: TokenLogprobs = None, backend: Backend | None = None
    ) -> Scores:
        started = time.perf_counter()
        values = []
        for i, s in enumerate(solutions):
            try:
                verdict = self.check(question, s)
            except Exception as exc:
                if self.on_error == "raise":
                    raise VerifierError(f"check {self.name!r} raised on candidate {i}: {exc!r}") from exc
                verdict = None
            if verdict is not None and not isinstance(verdict, bool):
                raise VerifierError(
                    f"check {self.name!r} must return True, False or None; candidate {i} got {verdict!r}"
                )
            values.append(self.unknown_score if verdict is None else PASS if verdict else FAIL)
        return Scores(tuple(values), seconds=time.perf_counter() - started)
