"""Rules that pick one candidate: highest score, majority vote, weighted majority vote, and
majority vote among the most confident samples (DeepConf's offline filter)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from ttc_agent.answers import answer_key
from ttc_agent.strategies.base import Candidate
from ttc_agent.verifiers import VerifierError

SELECTIONS = ("verifier", "majority", "weighted_majority", "confident_majority")
#: Tokens per window of `confidence` (the replies here run 50-400 tokens; DeepConf's 2,048-token
#: groups are sized for reasoning traces a hundred times longer).
CONFIDENCE_WINDOW = 32


def select(candidates: Sequence[Candidate], how: str, keep: float = 0.5) -> Candidate:
    """The chosen candidate under rule ``how`` (one of `SELECTIONS`); ``keep`` is the share of
    most confident candidates ``confident_majority`` votes among."""
    if not candidates:
        raise ValueError("no candidates to select from")
    if how == "verifier":
        return by_score(candidates)
    if how == "majority":
        return majority(candidates)
    if how == "weighted_majority":
        return weighted_majority(candidates)
    if how == "confident_majority":
        return confident_majority(candidates, keep)
    raise ValueError(f"unknown selection {how!r}; expected one of {SELECTIONS}")


def confidence(token_logprobs: Sequence[float], window: int = CONFIDENCE_WINDOW) -> float:
    """A sample's confidence as DeepConf measures it: the lowest mean token log-probability over
    any ``window`` consecutive tokens (the whole reply when it is shorter). A reply that turns
    uncertain anywhere scores low, however sure the rest of it is. An empty reply scores -inf."""
    values = np.asarray(token_logprobs, dtype=float)
    if values.size == 0:
        return float("-inf")
    if values.size <= window:
        return float(values.mean())
    sums = np.convolve(values, np.ones(window), mode="valid")
    return float(sums.min() / window)


def most_confident(candidates: Sequence[Candidate], keep: float) -> list[Candidate]:
    """The ``keep`` share (at least one) of ``candidates`` with the highest confidence, in their
    original order."""
    missing = [i for i, c in enumerate(candidates) if c.confidence is None]
    if missing:
        raise VerifierError(f"confidence filtering needs every candidate's confidence; candidates {missing} have none")
    count = max(1, int(np.ceil(keep * len(candidates))))
    ranked = sorted(range(len(candidates)), key=lambda i: -float(candidates[i].confidence))  # type: ignore[arg-type]
    chosen = set(ranked[:count])
    return [c for i, c in enumerate(candidates) if i in chosen]


def confident_majority(candidates: Sequence[Candidate], keep: float = 0.5) -> Candidate:
    """Majority vote among the ``keep`` share of most confident candidates (DeepConf offline,
    Fu et al. 2025); ties and answerless sets as in `majority`."""
    return majority(most_confident(candidates, keep))


def _score(c: Candidate) -> float:
    return c.score if c.score is not None else float("-inf")


def by_score(candidates: Sequence[Candidate]) -> Candidate:
    """The highest-scoring candidate, preferring ones with an answer; the first on ties."""
    with_answer = [c for c in candidates if c.answer is not None] or list(candidates)
    return max(with_answer, key=_score)


def answer_groups(candidates: Sequence[Candidate]) -> dict[str, list[Candidate]]:
    """The candidates that state an answer, grouped by the answer (equivalent forms together),
    in the order the answers first appear."""
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
    groups = answer_groups(candidates)
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
    groups = answer_groups(candidates)
    if not groups:
        return by_score(candidates)
    order = {k: i for i, k in enumerate(groups)}
    best = max(groups, key=lambda k: (sum(_score(c) for c in groups[k]), -order[k]))
    return max(groups[best], key=_score)
