"""Verifiers score whole and partial solutions; strategies use them to select and prune.

- `LogprobVerifier`: the generator's own token probabilities (free).
- `JudgeVerifier`: P("Yes") of a judge prompt on any backend.
- `PRMVerifier`: a process reward model loaded with transformers.
- `CheckVerifier`: executes a check (a tool call, unit tests, a schema) on each candidate.
- `LearnedVerifier`: an outcome reward probe on the generator's hidden states, from traces.
- `CallableVerifier`: any function ``(question, partial_solution) -> float``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ttc_agent.verifiers.base import BaseVerifier, CallableVerifier, Scores, Verifier, VerifierError, check_scores
from ttc_agent.verifiers.check import CheckVerifier
from ttc_agent.verifiers.judge import JudgeVerifier
from ttc_agent.verifiers.logprob import LogprobVerifier

__all__ = [
    "BaseVerifier",
    "CallableVerifier",
    "CheckVerifier",
    "JudgeVerifier",
    "LearnedVerifier",
    "LogprobVerifier",
    "PRMVerifier",
    "Scores",
    "Verifier",
    "VerifierError",
    "VerifierLike",
    "as_verifier",
    "check_scores",
]


def __getattr__(name: str) -> Any:
    if name == "PRMVerifier":
        from ttc_agent.verifiers.prm import PRMVerifier

        return PRMVerifier
    if name == "LearnedVerifier":
        from ttc_agent.verifiers.learned import LearnedVerifier

        return LearnedVerifier
    raise AttributeError(f"module 'ttc_agent.verifiers' has no attribute {name!r}")


#: What `as_verifier` accepts: a verifier, a scoring function ``(question, solution) -> float``,
#: a name, or ``None``.
VerifierLike = Verifier | Callable[[str, str], float] | str | None

_LEARNED: dict[str, Verifier] = {}


def _load_learned(folder: str) -> Verifier:
    """A learned verifier by folder, loaded once per process (its encoder is a whole model)."""
    from ttc_agent.verifiers.learned import LearnedVerifier

    if folder not in _LEARNED:
        _LEARNED[folder] = LearnedVerifier.load(folder)
    return _LEARNED[folder]


def as_verifier(obj: VerifierLike) -> Verifier | None:
    """A verifier from a verifier, a function, or a name (``logprob``, ``logprob:min``, ``judge``,
    ``learned:FOLDER`` for a trained `LearnedVerifier`)."""
    if obj is None or isinstance(obj, Verifier):
        return obj
    if isinstance(obj, str):
        if obj == "logprob":
            return LogprobVerifier()
        if obj.startswith("logprob:"):
            return LogprobVerifier(obj.split(":", 1)[1])
        if obj == "judge":
            return JudgeVerifier()
        if obj.startswith("learned:"):
            return _load_learned(obj.split(":", 1)[1])
        raise VerifierError(
            f"unknown verifier {obj!r}; expected 'logprob', 'logprob:min', 'judge', 'learned:FOLDER', a Verifier or a function"
        )
    if callable(obj):
        return CallableVerifier(obj)
    raise VerifierError(f"not a verifier: {obj!r}")
