"""Read a decision trace (JSONL from `TTCEngine(trace=...)`): a per-step table and a cost plot."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttc_agent.errors import InvalidRequestError
from ttc_agent.extras import needs_extra


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


def short_label(spec: str) -> str:
    """A compact name for plots: ``bo8 majority``, ``beam 2x2``, ``greedy``."""
    if m := re.match(r"best_of_n\((\d+), select=(\w+)", spec):
        return f"bo{m.group(1)} {m.group(2)}"
    if m := re.match(r"beam\(width=(\d+), expand=(\d+)", spec):
        return f"beam {m.group(1)}x{m.group(2)}"
    return spec


def burn_down(records: list[dict[str, Any]], unit: str) -> tuple[list[float], list[float]] | None:
    """Per budgeted step, what was left after it and what the manager's linear plan had left
    (the total shared evenly over the calls expected), for ``unit`` "tokens" or "seconds"."""
    left, plan = [], []
    for r in records:
        b = r.get("budget")
        if not b or b["before"].get(f"{unit}_total") is None:
            continue
        before = b["before"]
        calls = before["calls_done"] + before["calls_left"]
        left.append(b["after"][f"{unit}_left"])
        plan.append(before[f"{unit}_total"] * (1 - (before["calls_done"] + 1) / calls))
    return (left, plan) if left else None


def plot_cumulative(records: list[dict[str, Any]], path: str | Path) -> Path:
    """Cumulative tokens and seconds per step, each step labelled with its strategy (PNG); with
    a workflow budget, a second row draws the burn-down of what is left against the plan."""
    with needs_extra("plots", "plotting a report"):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

    records = [r for r in records if r.get("choice") is not None]  # a budget-exhausted stop spends nothing

    steps = range(1, len(records) + 1)
    tokens, seconds, t, s = [], [], 0, 0.0
    for r in records:
        t += r["actual"]["total_tokens"]
        s += r["actual"]["seconds"]
        tokens.append(t)
        seconds.append(s)
    burns = {u: burn_down(records, u) for u in ("tokens", "seconds")}
    rows = 2 if any(burns.values()) else 1
    fig, axes = plt.subplots(rows, 2, figsize=(10, 3.8 * rows), squeeze=False)
    a, b = axes[0]
    if rows == 2:
        for ax, unit in zip(axes[1], ("tokens", "seconds"), strict=True):
            burn = burns[unit]
            if burn is None:
                ax.set_axis_off()
                continue
            left, plan = burn
            xs = range(1, len(left) + 1)
            ax.step(xs, left, where="post", marker="o", label=f"{unit} left")
            ax.plot(xs, plan, linestyle="--", color="grey", label="plan (even split)")
            ax.axhline(0, color="red", linewidth=0.8)
            ax.set(xlabel="budgeted step", ylabel=f"{unit} left", title=f"budget burn-down: {unit}")
            ax.set_xticks(list(xs))
            ax.legend(fontsize=7)
    for ax, ys, label in ((a, tokens, "cumulative tokens"), (b, seconds, "cumulative seconds")):
        ax.step(steps, ys, where="post", marker="o")
        for x, y, r in zip(steps, ys, records, strict=True):
            ax.annotate(short_label(r["choice"]), (x, y), fontsize=7, xytext=(2, 4), textcoords="offset points")
        ax.set(xlabel="step", ylabel=label, title=label)
        ax.set_xticks(list(steps))
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
