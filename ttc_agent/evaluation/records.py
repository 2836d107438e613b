"""Flat, JSON-ready records of one strategy run on one problem, and offline re-selection.

A record keeps every candidate's text, answer, score and correctness, so other selection rules
can be replayed on the same samples without generating again (best-of-N's three rules share
one set of samples and one cost), and verifiers can be trained on the labelled candidates.
"""

from __future__ import annotations

from typing import Any

from ttc_agent.evaluation.datasets import Problem
from ttc_agent.strategies import Candidate, Outcome
from ttc_agent.strategies.selection import select

SCHEMA_VERSION = 1


def outcome_record(problem: Problem, outcome: Outcome, **extra: Any) -> dict[str, Any]:
    """One JSON-ready row: the problem, the chosen answer, its correctness, every candidate and the cost."""
    candidates = [
        {
            "text": k.text,
            "answer": k.answer,
            "score": k.score,
            "tokens": k.num_tokens,
            "finish": k.finish_reason,
            "confidence": k.confidence,
            "correct": problem.is_correct(k.answer),
        }
        for k in outcome.candidates
    ]
    cost = {**outcome.cost.as_dict()}
    return trace_record(problem, problem.messages(), outcome.strategy, outcome.answer, cost, outcome.stop_reason,
                        candidates, **extra)  # fmt: skip


def trace_record(
    problem: Problem,
    messages: Any,
    strategy: str,
    answer: str | None,
    cost: dict[str, Any],
    stop_reason: str | None,
    candidates: list[dict[str, Any]],
    **extra: Any,
) -> dict[str, Any]:
    """A trace row from its parts (a run's, or a replay's): the problem, the chosen answer
    graded, whether any candidate was right, the cost fields, why it stopped, the candidates."""
    return {
        "schema": SCHEMA_VERSION,
        "dataset": problem.source,
        "problem_id": problem.id,
        "level": problem.level,
        "scope": problem.scope,
        "messages": messages,
        "strategy": strategy,
        "gold": problem.answer,
        "answer": answer,
        "correct": problem.is_correct(answer),
        "pass": any(k["correct"] for k in candidates),
        **cost,
        **({} if stop_reason is None else {"stop_reason": stop_reason}),
        "candidates": candidates,
        **extra,
    }


def reselect(record: dict[str, Any], rule: str, keep: float = 0.5) -> bool:
    """Whether selection rule ``rule`` picks a correct candidate among the record's candidates
    (``keep``: the share ``confident_majority`` votes among)."""
    cands = [
        Candidate(
            text="",
            answer=k["answer"],
            score=k["score"],
            num_tokens=k["tokens"],
            finish_reason=k["finish"],
            confidence=k.get("confidence"),
        )
        for k in record["candidates"]
    ]
    if not cands:
        return False
    chosen = select(cands, rule, keep)
    return bool(record["candidates"][cands.index(chosen)]["correct"])
