"""`ttc-agent collect`, `pool`, `replay` and `profile`: traces, pools and latency models."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ttc_agent.errors import TTCError

if TYPE_CHECKING:
    pass

from ttc_agent.cli.common import (
    ApiKeyOpt,
    BackendOpt,
    DataOpt,
    DatasetOpt,
    DtypeOpt,
    ExtractOpt,
    GradeOpt,
    GradingOpt,
    LevelOpt,
    LevelsOpt,
    LimitOpt,
    ModelOpt,
    PerLevelOpt,
    app,
    cli_backend,
    console,
    fail,
    problems_for,
    repeated_ints,
)


@app.command(rich_help_panel="Collect traces")
def collect(
    dataset: DatasetOpt,
    menu: Annotated[Path, typer.Option(help="Menu YAML: a 'strategies' list and optional 'defaults'.")],
    out: Annotated[Path, typer.Option(help="Trace folder (created, or resumed).")],
    backend: BackendOpt = "transformers",
    model: ModelOpt = None,
    api_key: ApiKeyOpt = None,
    dtype: DtypeOpt = None,
    limit: LimitOpt = None,
    data: DataOpt = None,
    per_level: PerLevelOpt = 20,
    level: LevelOpt = None,
    levels: LevelsOpt = None,
    seed: Annotated[int, typer.Option(help="Arithmetic question seed.")] = 0,
    grading: GradingOpt = "smollm2-135m",
    repeats: Annotated[int, typer.Option(help="Runs of each strategy per problem (k).")] = 2,
    concurrency: Annotated[int, typer.Option(help="Runs in flight at once (for server backends).")] = 1,
    rollouts: Annotated[
        int,
        typer.Option(help="Then label partial solutions: continue each step prefix of sampled candidates N times."),
    ] = 0,
    extract: ExtractOpt = None,
    grade: GradeOpt = None,
) -> None:
    """Run every menu strategy on every problem, REPEATS times, appending traces to OUT (resumable);
    with --rollouts N, also label the step prefixes of sampled candidates by N continuations each
    (rollouts.jsonl, for `ttc-agent train-verifier --process`)."""
    from ttc_agent.evaluation.collect import collect as run_collect
    from ttc_agent.evaluation.rollouts import collect_rollouts
    from ttc_agent.strategies.menu import Menu

    try:
        m = Menu.load(menu)
        problems = problems_for(
            dataset,
            limit,
            data,
            per_level,
            repeated_ints(level, levels, (1, 2, 3), "--level", "--levels"),
            grading,
            extract,
            grade,
            seed=seed,
        )
        b = cli_backend(backend, model, api_key, dtype)
        done = run_collect(problems, m, b, out, repeats=repeats, concurrency=concurrency, dataset=dataset)
        labelled = collect_rollouts(out, b, n=rollouts, problems={p.id for p in problems}) if rollouts else 0
    except TTCError as exc:
        raise fail(exc) from exc
    console.print(f"{done} runs added to {out} ({len(problems)} problems x {len(m.specs)} strategies x {repeats})")
    if rollouts:
        console.print(f"{labelled} candidates' step prefixes labelled by {rollouts} rollouts each")


@app.command(rich_help_panel="Collect traces")
def pool(
    dataset: DatasetOpt,
    out: Annotated[Path, typer.Option(help="Pool folder (created, or resumed).")],
    temperature: Annotated[
        list[str],
        typer.Option(help="TEMPERATURE=SAMPLES to draw besides one greedy run, e.g. 0.3=16; repeat for more."),
    ],
    backend: BackendOpt = "transformers",
    model: ModelOpt = None,
    api_key: ApiKeyOpt = None,
    dtype: DtypeOpt = None,
    max_tokens: Annotated[int, typer.Option(help="Every sample's cap on generated tokens.")] = 384,
    limit: LimitOpt = None,
    data: DataOpt = None,
    per_level: PerLevelOpt = 20,
    level: LevelOpt = None,
    levels: LevelsOpt = None,
    grading: GradingOpt = "smollm2-135m",
    questions_per_call: Annotated[
        int, typer.Option(help="Questions sharing one backend call (batched backends run them together).")
    ] = 4,
    extract: ExtractOpt = None,
    grade: GradeOpt = None,
) -> None:
    """Draw a trace pool (resumable): per question one greedy run and SAMPLES samples at each
    temperature, every sample with its answer, tokens, finish reason and confidence, so every
    sample-based strategy can be replayed from it instead of generated separately."""
    from ttc_agent.evaluation.pools import PoolSpec, collect_pool

    try:
        spec = PoolSpec.parse(temperature, max_tokens)
        problems = problems_for(
            dataset,
            limit,
            data,
            per_level,
            repeated_ints(level, levels, (1, 2, 3), "--level", "--levels"),
            grading,
            extract,
            grade,
        )
        b = cli_backend(backend, model, api_key, dtype)
        done = collect_pool(problems, b, out, spec, questions_per_call=questions_per_call, dataset=dataset)
    except TTCError as exc:
        raise fail(exc) from exc
    console.print(
        f"{done} pool records added to {out} ({len(problems)} problems x {1 + len(spec.samples)} temperatures)"
    )


@app.command(rich_help_panel="Collect traces")
def replay(
    pool_folder: Annotated[Path, typer.Argument(help="A trace pool folder (ttc-agent pool).")],
    menu: Annotated[Path, typer.Option(help="Menu YAML of the strategies to replay (no beam search).")],
    out: Annotated[Path, typer.Option(help="Trace folder to write (replaced if it exists).")],
    latency: Annotated[
        Path | None,
        typer.Option(help="Latency model JSON (ttc-agent profile); default: fitted on the pool's own calls."),
    ] = None,
) -> None:
    """Replay every strategy of a menu from a trace pool: whole-menu traces, as `collect` writes
    them, with tokens from the samples each strategy used and seconds from a latency model, for
    `ttc-agent train` and `evaluate`. Questions whose pool is not yet whole (a pool still being
    drawn) are left out and counted."""
    from ttc_agent.evaluation.collect import write_trace_folder
    from ttc_agent.evaluation.pool_replay import pool_latency, replay_pool
    from ttc_agent.evaluation.pools import PoolSpec, complete_questions, read_pool, read_pool_meta
    from ttc_agent.probes.latency import LatencyModel
    from ttc_agent.strategies.menu import Menu

    try:
        m, meta, drawn = Menu.load(menu), read_pool_meta(pool_folder), read_pool(pool_folder)
        records = complete_questions(drawn, PoolSpec.from_dict(meta["pool"]))
        partial = len({r["problem_id"] for r in drawn}) - len({r["problem_id"] for r in records})
        lat = LatencyModel.load(latency) if latency is not None else pool_latency(records, meta["backend"])
        traces = replay_pool(records, m.specs, lat, **m.defaults)
        write_trace_folder(
            out,
            {"menu": m.to_dict(), "backend": meta["backend"], "dataset": meta.get("dataset", ""),
             "replayed_from": {"pool": str(pool_folder), "pool_spec": meta["pool"], "latency": list(lat.weights)}},
        traces,
        )  # fmt: skip
    except TTCError as exc:
        raise fail(exc) from exc
    console.print(
        f"{len(traces)} runs replayed into {out} ({len(traces) // len(m.specs)} problems x {len(m.specs)} strategies)"
        + (f"; {partial} problems left out, their pools not yet whole" if partial else "")
    )


@app.command(rich_help_panel="Collect traces")
def profile(
    out: Annotated[Path, typer.Option(help="Where to write the latency model (JSON).")],
    backend: BackendOpt = "transformers",
    model: ModelOpt = None,
    api_key: ApiKeyOpt = None,
    dtype: DtypeOpt = None,
    requests: Annotated[int, typer.Option(help="Measured requests of varied shape.")] = 24,
) -> None:
    """Measure this backend's seconds per request shape and fit a LatencyModel."""
    from ttc_agent.probes.latency import LatencyModel
    from ttc_agent.probes.latency import profile as run_profile

    try:
        b = cli_backend(backend, model, api_key, dtype)
        rows = run_profile(b, requests=requests)
        lat = LatencyModel.fit(rows, backend=b.fingerprint())
    except TTCError as exc:
        raise fail(exc) from exc
    lat.save(out)
    console.print(
        f"latency model ({len(rows)} requests) written to {out}: weights {[round(w, 5) for w in lat.weights]}"
    )
