"""`ttc-agent train`, `evaluate`, `simulate` and `train-verifier`: fit and measure probes, budgets and verifiers."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ttc_agent.errors import TTCError

if TYPE_CHECKING:
    pass

from ttc_agent.cli.common import (
    JsonOpt,
    ModelOpt,
    app,
    ci_text,
    comma_separated,
    console,
    emit,
    err_console,
    fail,
    held_out,
    num,
    repeated,
    repeated_ints,
)
from ttc_agent.cli.tables import make_table, metrics_table, simulation_table


@app.command(rich_help_panel="Fit and measure")
def train(
    traces: Annotated[
        list[Path],
        typer.Option(
            help="Trace folder written by `ttc-agent collect` or `ttc-agent replay`; repeat for several of one menu "
            "and model (one per task, say), fitted as one."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Probe bundle folder to write.")],
    feature: Annotated[
        list[str] | None,
        typer.Option(
            "--feature",
            help="A feature set to fit on, repeat for more: text_stats, sentence_embedding, prompt_hidden_state (the "
            "hidden state of the model the traces were collected on). Default: text_stats and sentence_embedding.",
            show_default=False,
        ),
    ] = None,
    features: Annotated[
        str | None,
        typer.Option(hidden=True, help="Deprecated: comma-separated feature sets; repeat --feature instead."),
    ] = None,
    latency: Annotated[
        Path | None, typer.Option(help="Latency model from `ttc-agent profile` (default: regress traced seconds).")
    ] = None,
    test_fraction: Annotated[float, typer.Option(help="Share of problems held out for the printed metrics.")] = 0.25,
    pool: Annotated[
        list[Path] | None,
        typer.Option(
            help="A trace pool (ttc-agent pool) to fit the menu's two-stage strategies' stage-2 models on; repeat for "
            "several (the pools the traces were replayed from).",
            show_default=False,
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Where to draw the held-out fit (reliability curves, predicted against measured seconds; PNG and "
            "SVG; needs the [plots] extra). Default: beside the bundle, OUT-fit.png.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit the probes on a train split of TRACES, print metrics on the held-out rest with a
    verdict per strategy (is its accuracy probe informative, are its token predictions usable,
    how many questions would resolve it), draw the held-out fit, and save the bundle (it records
    its training problems, so `ttc-agent evaluate` replays only the others); with --pool, also
    fit each two-stage strategy's stage-2 decision on the pools' training questions."""
    from ttc_agent.evaluation.probe_training import train_from_traces
    from ttc_agent.evaluation.verdict import verdicts
    from ttc_agent.plotting import plot_probe_fit, short_label

    try:
        default = ("text_stats", "sentence_embedding")
        chosen = ",".join(repeated(feature, features, default, "--feature", "--features", comma_separated))
        with console.status(f"featurising and fitting {', '.join(map(str, traces))}..."):
            trained = train_from_traces(traces, chosen, latency, test_fraction)
            if pool:
                from ttc_agent.evaluation.pool_replay import fit_stage2, pool_latency
                from ttc_agent.evaluation.pools import read_pool, read_pool_meta

                records = [r for folder in pool for r in read_pool(folder)]
                lat = trained.bundle.latency or pool_latency(records, read_pool_meta(pool[0])["backend"])
                fitted = fit_stage2(trained.bundle, records, lat)
                err_console.print(
                    f"stage-2 models fitted on {', '.join(map(str, pool))} for "
                    f"{fitted or 'no two-stage strategy of the menu'}"
                )
    except TTCError as exc:
        raise fail(exc) from exc
    bundle, n = trained.bundle, len(trained.table.ids)
    bundle.save(out)
    held = trained.table.subset(trained.test)
    try:
        preds = bundle.predict_features(trained.X[trained.test], held.prompt_tokens)
        stem = str(plot.with_suffix("") if plot is not None else out.parent / f"{out.name}-fit")
        drawn = plot_probe_fit(out.name, [short_label(s) for s in bundle.specs], held, preds, stem)
    except TTCError as exc:
        raise fail(exc) from exc
    judged = verdicts(trained.metrics, n)
    if as_json:
        emit({"bundle": str(out), "problems": n, "held_out": len(trained.test), "metrics": trained.metrics,
              "verdicts": [asdict(v) for v in judged], "plots": drawn})  # fmt: skip
        return
    console.print(metrics_table(trained.metrics, f"held-out metrics ({len(trained.test)} of {n} problems)"))
    for v in judged:
        console.print(f"- {v.line()}")
    console.print(f"probe bundle written to {out}; held-out fit drawn in {', '.join(drawn)}")


@app.command(rich_help_panel="Fit and measure")
def evaluate(
    traces: Annotated[Path, typer.Option(help="Trace folder written by `ttc-agent collect`.")],
    probes: Annotated[Path, typer.Option(help="Probe bundle from `ttc-agent train`.")],
    out: Annotated[Path, typer.Option(help="Folder for the plots (PNG, SVG) and replay.json.")] = Path("evaluation"),
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the confidence intervals.")] = 500,
    as_json: JsonOpt = False,
) -> None:
    """Replay policies on the held-out traces (those the bundle was not trained on): statics,
    the adaptive policy over a sweep of prices, and the hindsight oracle. Generates nothing."""
    import json

    from ttc_agent.evaluation.replay import replay
    from ttc_agent.plotting import plot_replay as plot

    try:
        bundle, table = held_out(traces, probes)
        held = table.ids
        with console.status(f"replaying {len(held)} held-out problems..."):
            pred = bundle.predict(table.prompts, table.prompt_tokens)
            result = replay(table, pred, bootstrap=bootstrap)
    except TTCError as exc:
        raise fail(exc) from exc
    out.mkdir(parents=True, exist_ok=True)
    result["plots"] = plot(result, str(out / "pareto"))
    (out / "replay.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    if as_json:
        emit(result)
        return
    columns = (
        "cost",
        "best static",
        "adaptive acc at that cost [95% CI]",
        "oracle acc",
        "adaptive cost for its acc",
        "gap closed [95% CI]",
    )
    rows = []
    for cost in ("tokens", "seconds"):
        r, ci = result[cost], result[cost]["ci95"]
        rows.append((
            cost,
            f"acc {r['best_static']['accuracy']:.3f}, {r['best_static'][cost]:.1f}",
            f"{num(r['adaptive_accuracy_at_static_cost'])} {ci_text(ci['adaptive_accuracy_at_static_cost'])}",
            num(r["oracle_accuracy_at_static_cost"]),
            "not reached"
            if r["cost_ratio_at_static_accuracy"] is None
            else f"{r['cost_ratio_at_static_accuracy']:.0%} of static",
            f"{num(r['gap_closed'])} {ci_text(ci['gap_closed'])}",
        ))  # fmt: skip
    console.print(make_table(f"{len(held)} held-out problems; best static: {result['best_static']}", columns, rows))
    console.print(f"choices by level (at the best static's token cost): {result['choices_by_level']}")
    console.print(f"plots: {', '.join(result['plots'])}")


@app.command(rich_help_panel="Fit and measure")
def simulate(
    traces: Annotated[Path, typer.Option(help="Trace folder written by `ttc-agent collect`.")],
    probes: Annotated[Path, typer.Option(help="Probe bundle from `ttc-agent train`.")],
    budget_tokens: Annotated[
        str, typer.Option(help="Workflow token budgets to compare, comma-separated (e.g. 300,600,1200).")
    ] = "",
    budget_seconds: Annotated[str, typer.Option(help="Workflow seconds budgets, comma-separated.")] = "",
    steps: Annotated[int, typer.Option(help="LLM calls per workflow.")] = 4,
    workflows: Annotated[int, typer.Option(help="Workflows replayed per budget.")] = 10_000,
    managers: Annotated[str, typer.Option(help="Budget managers to compare, comma-separated.")] = "equal,paced",
    static: Annotated[str, typer.Option(help="Static strategies to compare, ';'-separated specs.")] = "",
    success_share: Annotated[float, typer.Option(help="Share of steps that must be right for success.")] = 1.0,
    quantile: Annotated[
        float, typer.Option(help="Quantile of a strategy's predicted cost that must fit (the budgets' quantile).")
    ] = 0.9,
    out: Annotated[Path, typer.Option(help="Folder for simulate.json and the plot.")] = Path("simulation"),
    seed: Annotated[int, typer.Option(help="Seed for drawing the workflows.")] = 0,
) -> None:
    """Replay synthetic multi-call workflows, drawn from the held-out traces, under each budget
    manager and the baselines at equal total budget (always one strategy, per-call adaptive with
    calibrated fixed prices, the hindsight oracle, the spend ceiling). Generates nothing."""
    import json

    from ttc_agent.budgets import WorkflowBudget
    from ttc_agent.evaluation.simulate import simulate as run_simulation
    from ttc_agent.plotting import plot_simulation

    try:
        tok = [int(x) for x in budget_tokens.split(",") if x.strip()]
        sec = [float(x) for x in budget_seconds.split(",") if x.strip()]
    except ValueError as exc:
        raise fail(TTCError(f"budgets must be comma-separated numbers: {exc}")) from exc
    if bool(tok) == bool(sec):
        raise fail(TTCError("give --budget-tokens or --budget-seconds (one of them)"))
    try:
        budgets = [WorkflowBudget(max_tokens=t, quantile=quantile) for t in tok] + [
            WorkflowBudget(max_seconds=s, quantile=quantile) for s in sec
        ]
        bundle, table = held_out(traces, probes)
        statics = [s.strip() for s in static.split(";") if s.strip()]
        unknown = [s for s in statics if s not in bundle.specs]
        if unknown:
            raise TTCError(f"static strategies {unknown} are not on the bundle's menu {list(bundle.specs)}")
        pred = bundle.predict(table.prompts, table.prompt_tokens)
        rows = run_simulation(
            table,
            pred,
            budgets,
            steps=steps,
            workflows=workflows,
            managers=[m.strip() for m in managers.split(",") if m.strip()],
            statics=statics,
            calibration=bundle.calibration_,
            success_share=success_share,
            seed=seed,
        )
    except TTCError as exc:
        raise fail(exc) from exc
    out.mkdir(parents=True, exist_ok=True)
    plots = plot_simulation(rows, str(out / "success-vs-budget"))
    (out / "simulate.json").write_text(json.dumps({"rows": rows, "plots": plots}, indent=2) + "\n")
    console.print(
        simulation_table(rows, f"{workflows} workflows of {steps} calls from {len(table.ids)} held-out problems")
    )
    console.print(f"wrote {out / 'simulate.json'} and {', '.join(plots)}")


@app.command("train-verifier", rich_help_panel="Fit and measure")
def train_verifier(
    traces: Annotated[
        list[Path],
        typer.Option(
            help="Trace folder(s) from `ttc-agent collect` with best-of-N runs (repeat the option for several)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Folder for the trained verifier.")],
    model: ModelOpt = None,
    layer: Annotated[
        list[int] | None,
        typer.Option(
            "--layer",
            help="A hidden-state layer to read; repeat for more (default: the middle, three-quarters and last layer).",
            show_default=False,
        ),
    ] = None,
    layers: Annotated[
        str | None, typer.Option(hidden=True, help="Deprecated: comma-separated layers; repeat --layer instead.")
    ] = None,
    test_fraction: Annotated[float, typer.Option(help="Share of problems held out for the printed metrics.")] = 0.3,
    process: Annotated[
        bool,
        typer.Option(help="Also train on partial solutions labelled by rollouts (`ttc-agent collect --rollouts N`)."),
    ] = False,
) -> None:
    """Train a LearnedVerifier on the labelled candidates of TRACES (with --process, also on
    rollout-labelled partial solutions: a process reward model for beam search); print held-out
    AUROC and selection accuracy."""
    from ttc_agent.evaluation.verifier_training import train_verifier_from_traces

    try:
        with console.status("encoding and fitting the candidates, then scoring the held-out ones..."):
            report = train_verifier_from_traces(
                traces,
                model=model,
                layers=repeated_ints(layer, layers, (), "--layer", "--layers") or None,
                test_fraction=test_fraction,
                process=process,
            )
    except TTCError as exc:
        raise fail(exc) from exc
    title = f"learned verifier, {report.held_out_runs} held-out runs ({report.held_out_problems} problems)"
    row = (
        "-" if report.auroc is None else f"{report.auroc:.3f}",
        f"{report.select_by_verifier:.3f}",
        f"{report.majority_vote:.3f}",
        f"{report.pass_at_n:.3f}",
    )
    console.print(make_table(title, ("candidate AUROC", "select by verifier", "majority vote", "pass@N"), [row]))
    report.verifier.save(out)
    console.print(f"verifier written to {out}; use it as best_of_n(8, select=verifier:{out})")
