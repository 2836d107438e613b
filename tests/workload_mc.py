"""A non-numeric workload for the tests: multiple-choice questions answered with a letter."""

from __future__ import annotations

import re

_LETTER = re.compile(r"answer\s*(?:is|:)?\s*\(?([A-Da-d])\)?", re.IGNORECASE)


def extract(text: str) -> str | None:
    """The chosen letter ("Answer: b", "the answer is (B)" -> "B")."""
    hits = _LETTER.findall(text)
    return hits[-1].upper() if hits else None


def grade(answer: str | None, gold: str) -> bool:
    return answer is not None and answer.upper() == gold.strip().upper()


def broken(answer: str | None, gold: str) -> bool:
    raise RuntimeError("this grader is broken")


def answered(answer: str | None, gold: str) -> bool:
    """A grader that judges a reply alone (no gold answer: prompts from a decision log): did it
    commit to a letter at all."""
    return answer is not None
