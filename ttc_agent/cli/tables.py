"""The command line's tables: one renderer (`make_table`) every command prints through, and the
tables more than one place prints (strategy costs, probe metrics, budget simulations)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.table import Table

if TYPE_CHECKING:
    from ttc_agent.strategies import Outcome


def make_table(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[str]] = (), *, wrap: Iterable[str] = ()
) -> Table:
    """A titled table with one column per name and ``rows`` of already formatted cells; only the
    columns named in ``wrap`` wrap (free text), the others keep their cells on one line."""
    wrapped = set(wrap)
    t = Table(title=title)
    for name in columns:
        t.add_column(name, no_wrap=name not in wrapped)
    for row in rows:
        t.add_row(*row)
    return t


def cost_table(title: str, outcomes: Iterable[tuple[str, Outcome]]) -> Table:
    """What each named strategy's run answered and cost, one row per run."""
    rows = [
        (
            name,
            str(o.answer),
            str(o.cost.prompt_tokens),
            str(o.cost.completion_tokens),
            str(o.cost.verifier_tokens),
            str(o.cost.rounds),
            f"{o.cost.seconds:.2f}",
        )
        for name, o in outcomes
    ]
    columns = ("strategy", "answer", "prompt tok", "completion tok", "verifier tok", "rounds", "seconds")
    return make_table(title, columns, rows, wrap=("answer",))


def metrics_table(metrics: Mapping[str, Mapping[str, Any]], title: str) -> Table:
    """The probes' held-out metrics (`ttc_agent.probes.evaluate.evaluate`), one row per strategy."""
    columns = ("strategy", "acc", "pred acc", "AUROC", "Brier", "ECE", "tokens MAPE", "seconds MAPE", "q90 covers")
    rows = [
        (
            spec,
            f"{m['accuracy']:.2f}",
            f"{m['predicted_accuracy']:.2f}",
            "-" if m["auroc"] is None else f"{m['auroc']:.3f}",
            f"{m['brier']:.3f}",
            f"{m['ece']:.3f}",
            f"{m['tokens_mape']:.1%}",
            f"{m['seconds_mape']:.1%}",
            f"{m['tokens_q90_coverage']:.0%}",
        )
        for spec, m in metrics.items()
    ]
    return make_table(title, columns, rows)


def simulation_table(rows: Sequence[Mapping[str, Any]], title: str) -> Table:
    """Budget simulation rows (`ttc_agent.evaluation.simulate.simulate`): budget, allocation,
    success, spend, utilisation, violations and the share of the adaptive-to-oracle gap closed."""
    key = "max_tokens" if rows[0].get("max_tokens") is not None else "max_seconds"
    columns = ("budget", "allocation", "success", "tokens", "seconds", "utilisation", "violations", "gap closed")
    cells = []
    for r in rows:
        util = r.get("utilisation_tokens", r.get("utilisation_seconds"))
        gap = r.get("gap_closed_vs_adaptive")
        budget = f"{r[key]:g}" + (f" ({r['budget_vs_greedy']:g}x greedy)" if "budget_vs_greedy" in r else "")
        cells.append(
            (
                budget,
                r["allocation"],
                f"{r['success']:.3f}",
                f"{r['tokens']:.0f}",
                f"{r['seconds']:.1f}",
                f"{util:.0%}",
                str(r["violations"]),
                "-" if gap is None else f"{gap:.0%}",
            )
        )
    return make_table(title, columns, cells)
