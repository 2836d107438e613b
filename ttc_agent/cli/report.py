"""`ttc-agent report`: read a decision log (tables, a plot, JSON or a self-contained HTML page)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ttc_agent.errors import TTCError

if TYPE_CHECKING:
    pass

from ttc_agent.cli.common import JsonOpt, app, budget_left, console, emit, fail
from ttc_agent.cli.tables import make_table


def _report_json(records: list[dict[str, Any]], plot: Path, html: Path | None) -> dict[str, Any]:
    """`ttc-agent report --json`: totals, per-strategy counts and the records themselves."""
    from dataclasses import asdict

    from ttc_agent.report import length_cuts_by_strategy

    ran = [r for r in records if r.get("choice")]
    out = {
        "decisions": len(records),
        "calls": len(ran),
        "stopped_by_budget": len(records) - len(ran),
        "total_tokens": sum(r["actual"]["total_tokens"] for r in ran),
        "total_seconds": sum(r["actual"]["seconds"] for r in ran),
        "by_strategy": {spec: asdict(c) for spec, c in length_cuts_by_strategy(records).items()},
        "plot": str(plot),
        "records": records,
    }
    if html is not None:
        from ttc_agent.report_html import write_html

        out["html"] = str(write_html(records, html, f"ttc-agent decisions: {plot.stem}"))
    return out


@app.command(rich_help_panel="Inspect")
def report(
    trace: Annotated[Path, typer.Argument(help="A decision trace (JSONL) written by TTCEngine(trace=...).")],
    plot: Annotated[
        Path | None,
        typer.Option(help="Where to draw cumulative tokens and seconds per step (PNG); default: beside the trace."),
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option(
            help="Also write one self-contained HTML page: a timeline of the calls (predicted against measured "
            "tokens and seconds), the budget burning down, totals by strategy and every record."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the per-step decision table of a trace and plot its cumulative tokens and seconds
    (and, under a workflow budget, what was left after each step against the manager's plan)."""
    from ttc_agent.plotting import plot_cumulative
    from ttc_agent.report import length_cuts_by_strategy, read_decisions

    try:
        records = read_decisions(trace)
    except TTCError as exc:
        raise fail(exc) from exc
    if as_json:
        emit(_report_json(records, plot_cumulative(records, plot or trace.with_suffix(".png")), html))
        return
    nodes = {r.get("node", "") for r in records}
    title = f"{len(records)} decisions in {trace}" + (f" (node {nodes.pop()})" if len(nodes) == 1 else "")
    columns = ["#", "node", "choice", "P", "tokens", "secs", "left", "answer"]
    if len(nodes) <= 1:
        columns.remove("node")
    if not any(r.get("budget") for r in records):
        columns.remove("left")
    rows: list[list[str]] = []
    total_tokens = total_seconds = 0.0
    for i, r in enumerate(records, 1):
        if r.get("choice") is None:  # the workflow budget stopped the run here
            cells = {
                "#": str(i),
                "node": r.get("node", ""),
                "choice": "stopped: budget",
                "answer": r["exhausted"]["message"],
            }
            rows.append([cells.get(c, "") for c in columns])
            continue
        chosen = next(c for c in r["candidates"] if c["strategy"] == r["choice"])
        a = r["actual"]
        total_tokens += a["total_tokens"]
        total_seconds += a["seconds"]
        cells = {
            "#": str(i), "node": r.get("node", ""), "choice": r["choice"] + ("" if r.get("feasible", True) else " (nothing fit)"),
            "P": f"{chosen['accuracy']:.2f}", "tokens": f"{chosen['tokens']:.0f}→{a['total_tokens']}",
            "secs": f"{chosen['seconds']:.1f}→{a['seconds']:.1f}", "answer": str(r.get("answer")),
            "left": budget_left(r.get("budget")),
        }  # fmt: skip
        rows.append([cells[c] for c in columns])
    console.print(make_table(title, columns, rows, wrap=("answer",)))
    console.print("P: predicted probability the choice is right; tokens and secs: predicted→measured")
    prices = sorted({(r["limits"]["lambda_tokens"], r["limits"]["lambda_seconds"]) for r in records if "limits" in r})
    console.print(
        f"total: {total_tokens:.0f} tokens, {total_seconds:.2f} s; prices (lambda_tokens, lambda_seconds): {prices}"
    )
    cuts = length_cuts_by_strategy(records)
    if any(c.replies_cut or c.samples_cut or c.beyond_traced for c in cuts.values()):
        columns = ["strategy", "calls", "replies cut", "samples cut", "cap above traced"]
        rows = [
            [s, str(c.calls), str(c.replies_cut), str(c.samples_cut), str(c.beyond_traced)] for s, c in cuts.items()
        ]
        console.print(make_table("cut by the per-sample token cap", columns, rows))
    out = plot_cumulative(records, plot or trace.with_suffix(".png"))
    console.print(f"plot: {out}")
    if html is not None:
        from ttc_agent.report_html import write_html

        console.print(f"html: {write_html(records, html, f'ttc-agent decisions: {trace.name}')}")
