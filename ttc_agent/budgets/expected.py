"""How many LLM calls a workflow still makes: from the user, or learned from earlier runs."""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from ttc_agent.budgets.budget import BudgetError
from ttc_agent.validation import POSITIVE_INT, check_param


class CallHistory:
    """Calls per node in earlier runs of a graph, to estimate how many a run still makes.

    Budgeted nodes report each run's calls per node as it goes (`observe`); the estimate for
    a node is the 90th percentile of its calls over earlier runs (so a budget rarely
    under-reserves), and a run's expected total is the sum over nodes. With ``path`` the
    history is kept in a JSON file across processes.

    Args:
        path: optional JSON file to load from and save to.
        default: calls assumed for a graph with no history yet.
        window: how many recent runs to keep.
    """

    def __init__(self, path: str | Path | None = None, *, default: int = 4, window: int = 200) -> None:
        check_param("default", default, POSITIVE_INT, owner="CallHistory", error=BudgetError)
        self.path, self.default, self.window = (Path(path) if path else None), default, window
        self._runs: OrderedDict[str, dict[str, int]] = OrderedDict()
        self._lock = threading.Lock()
        if self.path is not None and self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
                self._runs.update((str(k), {str(n): int(c) for n, c in v.items()}) for k, v in data["runs"].items())
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise BudgetError(f"{self.path} is not a call history file: {exc}") from exc

    def observe(self, run: str, node_calls: dict[str, int]) -> None:
        """Record the calls per node a run has made so far (later reports of a run replace earlier ones)."""
        with self._lock:
            self._runs[run] = dict(node_calls)
            self._runs.move_to_end(run)
            while len(self._runs) > self.window:
                self._runs.popitem(last=False)
            if self.path is not None:
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(json.dumps({"runs": self._runs}))
                tmp.replace(self.path)

    def expected_total(self, run: str, so_far: dict[str, int]) -> int:
        """Calls this run is expected to make in all (at least one more than it has made)."""
        with self._lock:
            earlier = [calls for r, calls in self._runs.items() if r != run]
        done = sum(so_far.values())
        if not earlier:
            return max(self.default, done + 1)
        nodes = set(so_far).union(*earlier)
        total = 0
        for node in nodes:
            counts = sorted(calls.get(node, 0) for calls in earlier)
            q90 = counts[min(len(counts) - 1, math.ceil(0.9 * len(counts)) - 1)]
            total += max(q90, so_far.get(node, 0))
        return max(total, done + 1)

    def as_dict(self) -> dict[str, Any]:
        return {"runs": dict(self._runs)}
