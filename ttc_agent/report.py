"""Read a decision trace (JSONL from `TTCEngine(trace=...)`): a per-step table and a cost plot."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttc_agent.errors import InvalidRequestError

# Re-exported: they lived here before the one plotting module.
from ttc_agent.plotting import burn_down as burn_down
from ttc_agent.plotting import plot_cumulative as plot_cumulative
from ttc_agent.plotting import short_label as short_label


def read_decisions(path: str | Path) -> list[dict[str, Any]]:
    """The decision records of a trace file, in order."""
    p = Path(path)
    if not p.is_file():
        raise InvalidRequestError(f"no trace file at {str(p)!r}")
    records = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidRequestError(f"{p}:{n} is not JSON: {exc}") from exc
        if "choice" not in rec or "actual" not in rec:
            raise InvalidRequestError(f"{p}:{n} is not a ttc decision record (no 'choice'/'actual')")
        records.append(rec)
    if not records:
        raise InvalidRequestError(f"{p} holds no decisions")
    return records


@dataclass
class LengthCuts:
    """One strategy's calls in a trace and how many were cut short by the per-sample cap."""

    calls: int = 0
    replies_cut: int = 0  #: calls whose reply ended by length (``finish_reason == "length"``)
    samples_cut: int = 0  #: samples of those calls that ended by length (chosen or not)
    beyond_traced: int = 0  #: calls that ran with a cap above the one their probes were traced at


def length_cuts_by_strategy(records: list[dict[str, Any]]) -> dict[str, LengthCuts]:
    """Per chosen strategy, its calls and those cut by the per-sample token cap (records
    written before ttc-agent recorded finish reasons count as not cut)."""
    out: dict[str, LengthCuts] = {}
    for r in records:
        if r.get("choice") is None:
            continue
        row = out.setdefault(r["choice"], LengthCuts())
        row.calls += 1
        row.replies_cut += r.get("finish_reason") == "length"
        row.samples_cut += int(r.get("cut_by_length", 0))
        row.beyond_traced += bool((r.get("cap") or {}).get("beyond_traced"))
    return out
