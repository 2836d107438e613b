"""`TraceTable`: traced runs grouped by problem, and the deterministic splits and folds of
problem ids that fitting and evaluation use (`split_ids`, `fold_of`)."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ttc_agent.backends.base import Prompt
from ttc_agent.errors import InvalidRequestError
from ttc_agent.probes.machines import seconds_on_one_machine


@dataclass
class TraceTable:
    """Traces grouped by problem: each problem's prompt and, per strategy, its runs."""

    ids: list[str]
    prompts: list[Prompt]
    prompt_tokens: np.ndarray
    runs: dict[str, list[list[dict[str, Any]]]]

    @classmethod
    def from_records(cls, records: Sequence[dict[str, Any]], specs: Sequence[str]) -> TraceTable:
        """Group the runs of ``specs`` by problem, keeping the problems that have runs of every
        strategy; runs from several machines get their seconds on the clock of the machine that
        traced the most (`seconds_on_one_machine`)."""
        by_problem: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        prompts: dict[str, Prompt] = {}
        for r in seconds_on_one_machine([r for r in records if r["strategy"] in specs]):
            by_problem[r["problem_id"]][r["strategy"]].append(r)
            prompts[r["problem_id"]] = r["messages"]
        ids = sorted(pid for pid, runs in by_problem.items() if all(runs.get(s) for s in specs))
        if not ids:
            raise InvalidRequestError(f"no problem in the traces has runs of every menu strategy {list(specs)}")
        # Every strategy reads the query prompt once in its first request (beam search reads
        # more in later rounds), so the smallest count over a problem's runs is the prompt's.
        prompt_tokens = np.array(
            [min(r["prompt_tokens"] for s in specs for r in by_problem[pid][s]) for pid in ids], dtype=float
        )
        return cls(
            ids, [prompts[i] for i in ids], prompt_tokens, {s: [by_problem[pid][s] for pid in ids] for s in specs}
        )

    def subset(self, keep: Sequence[int]) -> TraceTable:
        return TraceTable(
            [self.ids[i] for i in keep],
            [self.prompts[i] for i in keep],
            self.prompt_tokens[list(keep)],
            {s: [runs[i] for i in keep] for s, runs in self.runs.items()},
        )

    def values(self, spec: str, field: str) -> list[list[float]]:
        """Per problem, ``field`` of each of its runs of ``spec``."""
        return [[float(r[field]) for r in runs] for runs in self.runs[spec]]

    def mean(self, spec: str, field: str) -> np.ndarray:
        return np.array([np.mean([r[field] for r in runs]) for runs in self.runs[spec]], dtype=float)

    def run_rows(self, spec: str) -> tuple[np.ndarray, np.ndarray]:
        """For run-level fitting: the problem index of each run and its 0/1 correctness."""
        idx = [i for i, runs in enumerate(self.runs[spec]) for _ in runs]
        y = [int(r["correct"]) for runs in self.runs[spec] for r in runs]
        return np.array(idx, dtype=int), np.array(y, dtype=int)


def id_bucket(pid: str, seed: int = 0) -> float:
    """A stable pseudo-random number in [0, 1] for a problem id (what splits and folds use)."""
    return int(hashlib.sha256(f"{seed}/{pid}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def fold_of(pid: str, folds: int) -> int:
    """The cross-fitting fold (``0 .. folds - 1``) of a problem id, from its stable hash."""
    return min(int(id_bucket(pid) * folds), folds - 1)


def split_ids(ids: Sequence[str], test_fraction: float = 0.25, seed: int = 0) -> tuple[list[int], list[int]]:
    """A deterministic split of problem ids into train and test indices (by hash)."""
    test = [i for i, pid in enumerate(ids) if id_bucket(pid, seed) < test_fraction]
    held = set(test)
    train = [i for i in range(len(ids)) if i not in held]
    return train, test
