"""Rules that pick one candidate: highest score, majority vote, weighted majority vote."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from ttc_agent.answers import answer_key
from ttc_agent.strategies.base import Candidate
from ttc_agent.verifiers import VerifierError

SELECTIONS = ("verifier", "majority", "weighted_majority")


def select(candidates: Sequence[Candidate], how: str) -> Candidate:
    """The chosen candidate under rule ``how`` (one of `SELECTIONS`)."""
    if not candidates:
        raise ValueError("no candidates to select from")
    if how == "verifier":
        return by_score(candidates)
    if how == "majority":
        return majority(candidates)
    if how == "weighted_majority":
        return weighted_majority(candidates)
    raise ValueError(f"unknown selection {how!r}; expected one of {SELECTIONS}")


def _score(c: Candidate) -> float:
    return c.score if c.score is not None else float("-inf")


def by_score(candidates: Sequence[Candidate]) -> Candidate:
    """The highest-scoring candidate, preferring ones with an answer; the first on ties."""
    with_answer = [c for c in candidates if c.answer is not None] or list(candidates)
    return max(with_answer, key=_score)


def _groups(candidates: Sequence[Candidate]) -> dict[str, list[Candidate]]:
    groups: dict[str, list[Candidate]] = defaultdict(list)
    for c in candidates:
        key = answer_key(c.answer)
        if key is not None:
            groups[key].append(c)
    return groups


def majority(candidates: Sequence[Candidate]) -> Candidate:
    """The best candidate of the most frequent answer.

    Ties between answers go to the one whose best candidate scores highest, then to the answer
    seen first. Candidates without an answer do not vote; if none has one, the best-scoring
    candidate is returned (and the outcome has no answer).
    """
    groups = _groups(candidates)
    if not groups:
        return by_score(candidates)
    order = {k: i for i, k in enumerate(groups)}
    best = max(groups, key=lambda k: (len(groups[k]), max(_score(c) for c in groups[k]), -order[k]))
    return max(groups[best], key=_score)


def weighted_majority(candidates: Sequence[Candidate]) -> Candidate:
    """The best candidate of the answer with the largest sum of scores (scores must be >= 0)."""
    for i, c in enumerate(candidates):
        if c.score is None:
            raise VerifierError(f"weighted_majority needs a score for every candidate; candidate {i} has none")
        if c.score < 0:
            raise VerifierError(f"weighted_majority needs scores >= 0; candidate {i} scored {c.score}")
    groups = _groups(candidates)
    if not groups:
        return by_score(candidates)
    order = {k: i for i, k in enumerate(groups)}
    best = max(groups, key=lambda k: (sum(c.score for c in groups[k]), -order[k]))
    return max(groups[best], key=_score)
