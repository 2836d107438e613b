"""The ``ttc-agent`` command line."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ttc_agent.answers import Extractor, Grader
from ttc_agent.errors import InvalidRequestError, TTCError

if TYPE_CHECKING:
    from ttc_agent.backends.base import Backend
    from ttc_agent.budgets import BudgetStore
    from ttc_agent.evaluation.datasets import Problem
    from ttc_agent.probes import ProbeBundle, TraceTable
    from ttc_agent.strategies import Outcome

app = typer.Typer(help="Latency- and token-aware test-time compute for LLM calls.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


class Dtype(StrEnum):
    """Compute dtypes of the vllm backend."""

    float32 = "float32"
    bfloat16 = "bfloat16"


class LogLevel(StrEnum):
    """Log levels of `ttc-agent serve` (uvicorn's)."""

    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"


class Manager(StrEnum):
    """The workflow budget managers."""

    paced = "paced"
    equal = "equal"


def _check_backend(value: str) -> str:
    from ttc_agent.backends import LOCAL_BACKENDS

    if value in LOCAL_BACKENDS or value.startswith(("http://", "https://")):
        return value
    raise typer.BadParameter(f"{value!r}: expected one of {', '.join(LOCAL_BACKENDS)} or an http(s):// server URL")


def _check_dataset(value: str) -> str:
    from ttc_agent.evaluation.datasets import DATASETS

    if value in DATASETS or (value.endswith(".jsonl") and Path(value).is_file()):
        return value
    raise typer.BadParameter(f"{value!r}: expected one of {', '.join(DATASETS)} or an existing .jsonl file")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.print(f"ttc-agent {version('ttc-agent')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Latency- and token-aware test-time compute for LLM calls."""


BackendOpt = Annotated[
    str,
    typer.Option(
        callback=_check_backend,
        help="transformers, vllm, or an OpenAI-compatible server URL (http://host:port/v1).",
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        help="A named model (qwen2.5-coder-0.5b, smollm2-135m; default: smollm2-135m) or model folder, "
        "or the served model's name."
    ),
]
DtypeOpt = Annotated[
    Dtype | None,
    typer.Option(
        help="The vllm backend's compute dtype (default: bfloat16 where the CPU has avx512_bf16 or AMX, else "
        "float32); pass the dtype a trace folder was collected in to resume it on another CPU.",
        show_default=False,
    ),
]
DatasetOpt = Annotated[
    str,
    typer.Option(
        callback=_check_dataset, help="arithmetic, gsm8k, gsm8k-train, math500, or a JSONL file with question/answer."
    ),
]
LimitOpt = Annotated[int | None, typer.Option(help="Use the first N problems.")]
DataOpt = Annotated[Path | None, typer.Option(help="Folder holding gsm8k/ and math500/ (default: $TTC_AGENT_DATA).")]
PerLevelOpt = Annotated[int, typer.Option(help="Arithmetic questions per level.")]
LevelsOpt = Annotated[str, typer.Option(help="Arithmetic levels, comma-separated.")]
GradingOpt = Annotated[
    str, typer.Option(help="Arithmetic levels graded for this model: smollm2-135m or qwen2.5-coder-0.5b.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document to stdout instead of tables.")]
ExtractOpt = Annotated[
    str | None,
    typer.Option(
        help="Your workload's answer reader as module:function (reply text -> a canonical answer string), in place of "
        "the numeric one: votes group equal answers.",
    ),
]
GradeOpt = Annotated[
    str | None,
    typer.Option(
        help="Your workload's grader as module:function ((answer, gold) -> bool), in place of the numeric one."
    ),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(help="Bearer token for a server backend (default: $OPENAI_API_KEY).", show_default=False),
]


def _backend(
    backend: str, model: str | None, api_key: str | None = None, dtype: Dtype | None = None, **options: str
) -> Backend:
    from ttc_agent.backends import LOCAL_BACKENDS, load_backend

    if api_key is not None and backend in LOCAL_BACKENDS:
        raise InvalidRequestError(f"--api-key is for server backends, not {backend!r}")
    if dtype is not None:
        if backend != "vllm":
            raise InvalidRequestError(f"--dtype {dtype.value} is for the vllm backend, not {backend!r}")
        options["dtype"] = dtype.value
    _quiet_model_loading()
    with console.status(f"loading {backend} backend..."):
        return load_backend(backend, model, **({"api_key": api_key} if api_key else {}), **options)


def _quiet_model_loading() -> None:
    """Keep transformers' and the hub's progress bars out of the command's output."""
    import transformers
    from huggingface_hub.utils import disable_progress_bars  # type: ignore[attr-defined]

    transformers.logging.disable_progress_bar()
    transformers.logging.set_verbosity_error()
    disable_progress_bars()


def _cost_row(table: Table, name: str, outcome: Outcome) -> None:
    c = outcome.cost
    table.add_row(
        name,
        str(outcome.answer),
        str(c.prompt_tokens),
        str(c.completion_tokens),
        str(c.verifier_tokens),
        str(c.rounds),
        f"{c.seconds:.2f}",
    )


def _cost_table(title: str) -> Table:
    table = Table(title=title)
    for col in ("strategy", "answer", "prompt tok", "completion tok", "verifier tok", "rounds", "seconds"):
        table.add_column(col, justify="left" if col in ("strategy", "answer") else "right", no_wrap=col == "strategy")
    return table


@app.command()
def demo(
    question: Annotated[
        str, typer.Argument(help="A chain of sums to solve step by step.")
    ] = "What is 12 + 7 + 30 + 4?",
    max_tokens: Annotated[
        int | None, typer.Option(help="Workflow token budget: all steps together (prompt, completion, verifier).")
    ] = None,
    max_seconds: Annotated[float | None, typer.Option(help="Workflow seconds budget: all steps together.")] = None,
    manager: Annotated[Manager, typer.Option(help="Budget manager.")] = Manager.paced,
    lambda_tokens: Annotated[
        float, typer.Option(help="Price of a token when no budget is set (accuracy per token).")
    ] = 5e-4,
    model: Annotated[
        str,
        typer.Option(help="A named model (qwen2.5-coder-0.5b, the reference; smollm2-135m, fast) or a model folder."),
    ] = "qwen2.5-coder-0.5b",
    probes: Annotated[
        Path | None, typer.Option(help="Probe bundle folder (default: the one shipped for --model).")
    ] = None,
    trace: Annotated[Path, typer.Option(help="Where to write the decision trace (JSONL).")] = Path("ttc-demo.jsonl"),
) -> None:
    """Run the multi-step math agent: one ttc-agent call per step, each choosing its strategy
    from the probes shipped for the model, optionally under a workflow budget; print the
    per-step decisions, the budget left after each, the total cost and whether the answer is
    right.

    The shipped bundles were fitted on arithmetic questions, at 96 tokens a sample for the
    reference model and 64 for smollm2-135m."""
    import time

    from ttc_agent.backends import TransformersBackend
    from ttc_agent.budgets import WorkflowBudget
    from ttc_agent.demo import make_graph, numbers, shipped_probes
    from ttc_agent.nodes import TTCContext, TTCEngine, TTCNode
    from ttc_agent.probes import ProbeBundle
    from ttc_agent.report import short_label

    try:
        given = max_tokens is not None or max_seconds is not None
        budget = WorkflowBudget(max_tokens=max_tokens, max_seconds=max_seconds) if given else None
        _quiet_model_loading()
        with console.status(f"loading {model} and its probes..."):
            backend = TransformersBackend(model)
            bundle = (
                shipped_probes(backend)
                if probes is None
                else ProbeBundle.load(probes, fingerprint=backend.fingerprint())
            )
        trace.unlink(missing_ok=True)
        node = TTCNode(TTCEngine(backend, bundle, trace=trace, manager=manager.value))
        graph = make_graph(node)
        started = time.perf_counter()
        with console.status(f"solving {question!r} step by step..."):
            # Each step's reply states its sum first and may chat on: votes read that first result.
            settings = TTCContext(lambda_tokens=lambda_tokens, budget=budget, answer_scope="first_result")
            out = graph.invoke({"question": question}, context=settings)
        wall = time.perf_counter() - started
    except (TTCError, ValueError) as exc:
        raise _fail(exc) from exc
    title = f"{question}  [{backend.model_name}]" + (
        f", budget {_budget_text(max_tokens, max_seconds)} ({manager.value})" if budget else ""
    )
    t = Table(title=title)
    for col in ("step", "question", "strategy", "P(right)", "tokens", "seconds", "answer"):
        t.add_column(col)
    if budget:
        t.add_column("budget left")
    total_tokens = total_seconds = 0.0
    for i, step in enumerate(out.get("steps", []), 1):
        left, right = numbers(step["question"])
        ok = step["answer"] == str(left + right)
        total_tokens += step["tokens"]
        total_seconds += step["seconds"]
        cells = [
            str(i),
            step["question"],
            short_label(step["choice"]),
            f"{step['predicted_accuracy']:.2f}" + ("*" if step.get("out_of_distribution") else ""),
            f"{step['predicted_tokens']:.0f}→{step['tokens']}",
            f"{step['predicted_seconds']:.1f}→{step['seconds']:.1f}",
            f"{step['answer']} {'✓' if ok else '✗'}",
        ]
        t.add_row(*cells, *([_left(step["budget"])] if budget else []))
    console.print(t)
    if any(s.get("out_of_distribution") for s in out.get("steps", [])):
        console.print(
            "* out of distribution: the question lies outside the prompts the bundle was fitted on, so "
            "P(right) is the bundle's average for the strategy, not a reading of the question"
        )
    last = out["messages"][-1].content.splitlines()[-1]
    right = sum(numbers(question))
    steps = out.get("steps", [])
    finished = len(steps) == len(numbers(question)) - 1
    verdict = (
        "not finished: the budget ran out"
        if not finished
        else "[green]right ✓[/green]"
        if steps[-1]["answer"] == str(right)
        else f"[red]wrong ✗[/red] (right: {right})"
    )
    console.print(f"[bold]{last}[/bold]  {verdict}")
    console.print(
        f"total: {total_tokens:.0f} tokens, {total_seconds:.1f} s in LLM calls "
        f"({wall:.1f} s wall clock); decisions traced to {trace} (see `ttc-agent report {trace}`)"
    )


def _budget_text(max_tokens: int | None, max_seconds: float | None) -> str:
    return " and ".join(p for p in (max_tokens and f"{max_tokens} tokens", max_seconds and f"{max_seconds:g} s") if p)


@app.command()
def run(
    question: Annotated[str, typer.Argument(help="The question to answer.")],
    strategy: Annotated[
        str, typer.Option(help="Strategy spec, e.g. 'best_of_n(8, select=majority)' or 'beam(width=2, expand=2)'.")
    ] = "greedy",
    verifier: Annotated[
        str | None,
        typer.Option(
            help="'logprob', 'logprob:min', 'judge' or 'learned:FOLDER' (a `ttc-agent train-verifier` output; "
            "default: the strategy's own)."
        ),
    ] = None,
    backend: BackendOpt = "transformers",
    model: ModelOpt = None,
    api_key: ApiKeyOpt = None,
    dtype: DtypeOpt = None,
    max_tokens: Annotated[int, typer.Option(help="Tokens per sample (per beam for beam search).")] = 256,
    seed: Annotated[int | None, typer.Option(help="Sampling seed.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer QUESTION with one strategy; print the answer, every candidate with its score, and the cost."""
    from ttc_agent.strategies import parse_strategy

    try:
        s = parse_strategy(strategy, max_tokens=max_tokens)
        if seed is not None and s.deterministic:
            console.print(f"[yellow]note:[/yellow] {s.spec} decodes at temperature 0, so --seed {seed} has no effect")
        elif seed is not None:
            s = parse_strategy(strategy, max_tokens=max_tokens, seed=seed)
        b = _backend(backend, model, api_key, dtype)
        with console.status(f"running {s.spec}..."):
            outcome = s.run(question, b, verifier)
    except TTCError as exc:
        raise _fail(exc) from exc
    if as_json:
        _emit({"strategy": s.spec, "answer": outcome.answer, "text": outcome.text, "stop_reason": outcome.stop_reason,
               "stages": outcome.stages, "cost": outcome.cost.as_dict(),
               "candidates": [{"answer": c.answer, "score": c.score, "tokens": c.num_tokens, "finish": c.finish_reason,
                               "confidence": c.confidence, "text": c.text} for c in outcome.candidates]})  # fmt: skip
        return
    console.print(f"[bold]answer:[/bold] {outcome.answer if outcome.has_answer else '(no answer)'}")
    console.print(outcome.text.strip())
    cands = Table(title="candidates")
    for col in ("#", "answer", "score", "tokens", "finish", "text"):
        cands.add_column(col)
    for i, c in enumerate(outcome.candidates):
        score = "-" if c.score is None else f"{c.score:.3f}"
        cands.add_row(
            str(i), str(c.answer), score, str(c.num_tokens), c.finish_reason, c.text.strip().replace("\n", " ")[:70]
        )
    console.print(cands)
    table = _cost_table("cost")
    _cost_row(table, s.spec, outcome)
    console.print(table)


@app.command()
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
    levels: LevelsOpt = "1,2,3",
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
        problems = _problems(dataset, limit, data, per_level, levels, grading, extract, grade, seed=seed)
        b = _backend(backend, model, api_key, dtype)
        done = run_collect(problems, m, b, out, repeats=repeats, concurrency=concurrency, dataset=dataset)
        labelled = collect_rollouts(out, b, n=rollouts, problems={p.id for p in problems}) if rollouts else 0
    except TTCError as exc:
        raise _fail(exc) from exc
    console.print(f"{done} runs added to {out} ({len(problems)} problems x {len(m.specs)} strategies x {repeats})")
    if rollouts:
        console.print(f"{labelled} candidates' step prefixes labelled by {rollouts} rollouts each")


@app.command()
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
    levels: LevelsOpt = "1,2,3",
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
        problems = _problems(dataset, limit, data, per_level, levels, grading, extract, grade)
        b = _backend(backend, model, api_key, dtype)
        done = collect_pool(problems, b, out, spec, questions_per_call=questions_per_call, dataset=dataset)
    except TTCError as exc:
        raise _fail(exc) from exc
    console.print(
        f"{done} pool records added to {out} ({len(problems)} problems x {1 + len(spec.samples)} temperatures)"
    )


@app.command()
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
    `ttc-agent train` and `evaluate`."""
    from ttc_agent.evaluation.collect import write_trace_folder
    from ttc_agent.evaluation.pool_replay import pool_latency, replay_pool
    from ttc_agent.evaluation.pools import read_pool, read_pool_meta
    from ttc_agent.probes.latency import LatencyModel
    from ttc_agent.strategies.menu import Menu

    try:
        m, meta, records = Menu.load(menu), read_pool_meta(pool_folder), read_pool(pool_folder)
        lat = LatencyModel.load(latency) if latency is not None else pool_latency(records, meta["backend"])
        traces = replay_pool(records, m.specs, lat, **m.defaults)
        write_trace_folder(
            out,
            {"menu": m.to_dict(), "backend": meta["backend"], "dataset": meta.get("dataset", ""),
             "replayed_from": {"pool": str(pool_folder), "pool_spec": meta["pool"], "latency": list(lat.weights)}},
        traces,
        )  # fmt: skip
    except TTCError as exc:
        raise _fail(exc) from exc
    console.print(
        f"{len(traces)} runs replayed into {out} ({len(traces) // len(m.specs)} problems x {len(m.specs)} strategies)"
    )


@app.command()
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
        b = _backend(backend, model, api_key, dtype)
        rows = run_profile(b, requests=requests)
        lat = LatencyModel.fit(rows, backend=b.fingerprint())
    except TTCError as exc:
        raise _fail(exc) from exc
    lat.save(out)
    console.print(
        f"latency model ({len(rows)} requests) written to {out}: weights {[round(w, 5) for w in lat.weights]}"
    )


@app.command()
def train(
    traces: Annotated[Path, typer.Option(help="Trace folder written by `ttc-agent collect`.")],
    out: Annotated[Path, typer.Option(help="Probe bundle folder to write.")],
    features: Annotated[
        str,
        typer.Option(
            help="Comma-separated: text_stats, sentence_embedding, prompt_hidden_state (the hidden state of the model the traces were collected on)."
        ),
    ] = "text_stats,sentence_embedding",
    latency: Annotated[
        Path | None, typer.Option(help="Latency model from `ttc-agent profile` (default: regress traced seconds).")
    ] = None,
    test_fraction: Annotated[float, typer.Option(help="Share of problems held out for the printed metrics.")] = 0.25,
    pool: Annotated[
        Path | None,
        typer.Option(help="A trace pool (ttc-agent pool) to fit the menu's two-stage strategies' stage-2 models on."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit the probes on a train split of TRACES, print metrics on the held-out rest, and save
    the bundle (it records its training problems, so `ttc-agent evaluate` replays only the others);
    with --pool, also fit each two-stage strategy's stage-2 decision on the pool's training questions."""
    from ttc_agent.evaluation.probe_training import train_from_traces
    from ttc_agent.probes.evaluate import metrics_table

    try:
        with console.status(f"featurising and fitting {traces}..."):
            trained = train_from_traces(traces, features, latency, test_fraction)
            if pool is not None:
                from ttc_agent.evaluation.pool_replay import fit_stage2, pool_latency
                from ttc_agent.evaluation.pools import read_pool, read_pool_meta

                records = read_pool(pool)
                lat = trained.bundle.latency or pool_latency(records, read_pool_meta(pool)["backend"])
                fitted = fit_stage2(trained.bundle, records, lat)
                err_console.print(
                    f"stage-2 models fitted on {pool} for {fitted or 'no two-stage strategy of the menu'}"
                )
    except TTCError as exc:
        raise _fail(exc) from exc
    bundle, n = trained.bundle, len(trained.table.ids)
    bundle.save(out)
    if as_json:
        _emit({"bundle": str(out), "problems": n, "held_out": len(trained.test), "metrics": trained.metrics})
        return
    console.print(metrics_table(trained.metrics, f"held-out metrics ({len(trained.test)} of {n} problems)"))
    console.print(f"probe bundle written to {out}")


@app.command()
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

    from ttc_agent.evaluation.replay import plot, replay

    try:
        bundle, table = _held_out(traces, probes)
        held = table.ids
        with console.status(f"replaying {len(held)} held-out problems..."):
            pred = bundle.predict(table.prompts, table.prompt_tokens)
            result = replay(table, pred, bootstrap=bootstrap)
    except TTCError as exc:
        raise _fail(exc) from exc
    out.mkdir(parents=True, exist_ok=True)
    result["plots"] = plot(result, str(out / "pareto"))
    (out / "replay.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    if as_json:
        _emit(result)
        return
    t = Table(title=f"{len(held)} held-out problems; best static: {result['best_static']}")
    for col in (
        "cost",
        "best static",
        "adaptive acc at that cost [95% CI]",
        "oracle acc",
        "adaptive cost for its acc",
        "gap closed [95% CI]",
    ):
        t.add_column(col)
    for cost in ("tokens", "seconds"):
        r, ci = result[cost], result[cost]["ci95"]
        t.add_row(
            cost,
            f"acc {r['best_static']['accuracy']:.3f}, {r['best_static'][cost]:.1f}",
            f"{_num(r['adaptive_accuracy_at_static_cost'])} {_ci(ci['adaptive_accuracy_at_static_cost'])}",
            _num(r["oracle_accuracy_at_static_cost"]),
            "not reached"
            if r["cost_ratio_at_static_accuracy"] is None
            else f"{r['cost_ratio_at_static_accuracy']:.0%} of static",
            f"{_num(r['gap_closed'])} {_ci(ci['gap_closed'])}",
        )
    console.print(t)
    console.print(f"choices by level (at the best static's token cost): {result['choices_by_level']}")
    console.print(f"plots: {', '.join(result['plots'])}")


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


def _emit(document: object) -> None:
    """One JSON document on stdout (``--json``)."""
    import json

    print(json.dumps(document, indent=2, default=float))


def _left(budget: dict[str, Any] | None) -> str:
    """What a workflow budget had left after a step: "1200 tok, 31.0 s"."""
    if not budget:
        return ""
    after = budget["after"]
    parts = [f"{after['tokens_left']:.0f} tok"] if after["tokens_left"] is not None else []
    parts += [f"{after['seconds_left']:.1f} s"] if after["seconds_left"] is not None else []
    return ", ".join(parts)


def _held_out(traces: Path, probes: Path) -> tuple[ProbeBundle, TraceTable]:
    """The probe bundle and the traces of the problems it was not trained on."""
    from ttc_agent.evaluation.collect import read_traces
    from ttc_agent.probes import ProbeBundle, TraceTable

    bundle = ProbeBundle.load(probes)
    table = TraceTable.from_records(read_traces(traces), bundle.specs)
    held = bundle.held_out(table)
    if len(held.ids) < 5:
        raise TTCError(
            f"only {len(held.ids)} problems in {traces} were not used to train {probes}; collect held-out traces"
        )
    return bundle, held


@app.command()
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
    from ttc_agent.evaluation.simulate import plot_simulation, simulation_table
    from ttc_agent.evaluation.simulate import simulate as run_simulation

    try:
        tok = [int(x) for x in budget_tokens.split(",") if x.strip()]
        sec = [float(x) for x in budget_seconds.split(",") if x.strip()]
    except ValueError as exc:
        raise _fail(TTCError(f"budgets must be comma-separated numbers: {exc}")) from exc
    if bool(tok) == bool(sec):
        raise _fail(TTCError("give --budget-tokens or --budget-seconds (one of them)"))
    try:
        budgets = [WorkflowBudget(max_tokens=t, quantile=quantile) for t in tok] + [
            WorkflowBudget(max_seconds=s, quantile=quantile) for s in sec
        ]
        bundle, table = _held_out(traces, probes)
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
        raise _fail(exc) from exc
    out.mkdir(parents=True, exist_ok=True)
    plots = plot_simulation(rows, str(out / "success-vs-budget"))
    (out / "simulate.json").write_text(json.dumps({"rows": rows, "plots": plots}, indent=2) + "\n")
    console.print(
        simulation_table(rows, f"{workflows} workflows of {steps} calls from {len(table.ids)} held-out problems")
    )
    console.print(f"wrote {out / 'simulate.json'} and {', '.join(plots)}")


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _ci(ci: list[float] | None) -> str:
    return "" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


@app.command()
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
    from ttc_agent.report import length_cuts_by_strategy, plot_cumulative, read_decisions

    try:
        records = read_decisions(trace)
    except TTCError as exc:
        raise _fail(exc) from exc
    if as_json:
        _emit(_report_json(records, plot_cumulative(records, plot or trace.with_suffix(".png")), html))
        return
    nodes = {r.get("node", "") for r in records}
    t = Table(title=f"{len(records)} decisions in {trace}" + (f" (node {nodes.pop()})" if len(nodes) == 1 else ""))
    columns = ["#", "node", "choice", "P", "tokens", "secs", "left", "answer"]
    if len(nodes) <= 1:
        columns.remove("node")
    if not any(r.get("budget") for r in records):
        columns.remove("left")
    for col in columns:
        t.add_column(col, no_wrap=col != "answer")
    total_tokens = total_seconds = 0.0
    for i, r in enumerate(records, 1):
        if r.get("choice") is None:  # the workflow budget stopped the run here
            cells = {
                "#": str(i),
                "node": r.get("node", ""),
                "choice": "stopped: budget",
                "answer": r["exhausted"]["message"],
            }
            t.add_row(*(cells.get(c, "") for c in columns))
            continue
        chosen = next(c for c in r["candidates"] if c["strategy"] == r["choice"])
        a = r["actual"]
        total_tokens += a["total_tokens"]
        total_seconds += a["seconds"]
        cells = {
            "#": str(i), "node": r.get("node", ""), "choice": r["choice"] + ("" if r.get("feasible", True) else " (nothing fit)"),
            "P": f"{chosen['accuracy']:.2f}", "tokens": f"{chosen['tokens']:.0f}→{a['total_tokens']}",
            "secs": f"{chosen['seconds']:.1f}→{a['seconds']:.1f}", "answer": str(r.get("answer")),
            "left": _left(r.get("budget")),
        }  # fmt: skip
        t.add_row(*(cells[c] for c in columns))
    console.print(t)
    console.print("P: predicted probability the choice is right; tokens and secs: predicted→measured")
    prices = sorted({(r["limits"]["lambda_tokens"], r["limits"]["lambda_seconds"]) for r in records if "limits" in r})
    console.print(
        f"total: {total_tokens:.0f} tokens, {total_seconds:.2f} s; prices (lambda_tokens, lambda_seconds): {prices}"
    )
    cuts = length_cuts_by_strategy(records)
    if any(c.replies_cut or c.samples_cut or c.beyond_traced for c in cuts.values()):
        t = Table(title="cut by the per-sample token cap")
        for col in ("strategy", "calls", "replies cut", "samples cut", "cap above traced"):
            t.add_column(col)
        for spec, c in cuts.items():
            t.add_row(spec, str(c.calls), str(c.replies_cut), str(c.samples_cut), str(c.beyond_traced))
        console.print(t)
    out = plot_cumulative(records, plot or trace.with_suffix(".png"))
    console.print(f"plot: {out}")
    if html is not None:
        from ttc_agent.report_html import write_html

        console.print(f"html: {write_html(records, html, f'ttc-agent decisions: {trace.name}')}")


@app.command("train-verifier")
def train_verifier(
    traces: Annotated[
        list[Path],
        typer.Option(
            help="Trace folder(s) from `ttc-agent collect` with best-of-N runs (repeat the option for several)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Folder for the trained verifier.")],
    model: ModelOpt = None,
    layers: Annotated[
        str | None,
        typer.Option(
            help="Hidden-state layers to read, comma-separated (default: the middle, three-quarters and last layer)."
        ),
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
                layers=None if layers is None else _levels(layers, "--layers"),
                test_fraction=test_fraction,
                process=process,
            )
    except TTCError as exc:
        raise _fail(exc) from exc
    t = Table(title=f"learned verifier, {report.held_out_runs} held-out runs ({report.held_out_problems} problems)")
    for col in ("candidate AUROC", "select by verifier", "majority vote", "pass@N"):
        t.add_column(col)
    t.add_row(
        "-" if report.auroc is None else f"{report.auroc:.3f}",
        f"{report.select_by_verifier:.3f}",
        f"{report.majority_vote:.3f}",
        f"{report.pass_at_n:.3f}",
    )
    console.print(t)
    report.verifier.save(out)
    console.print(f"verifier written to {out}; use it as best_of_n(8, select=verifier:{out})")


def _store(spec: str) -> BudgetStore:
    """A budget store from ``--store``: ``memory``, ``sqlite:PATH`` or a ``postgresql://`` URL."""
    from ttc_agent.budgets import PostgresStore, ReservationPool, SQLiteStore

    if spec == "memory":
        return ReservationPool()
    if spec.startswith("sqlite:"):
        return SQLiteStore(spec.removeprefix("sqlite:"))
    if spec.startswith(("postgresql://", "postgres://")):
        return PostgresStore(spec)
    raise InvalidRequestError(f"--store must be memory, sqlite:PATH or a postgresql:// URL, got {spec!r}")


def _api_keys(keys_file: Path | None) -> list[str]:
    """API keys from ``$TTC_AGENT_API_KEYS`` (comma-separated) and ``--api-keys-file`` (one a line)."""
    import os

    keys = [k.strip() for k in os.environ.get("TTC_AGENT_API_KEYS", "").split(",") if k.strip()]
    if keys_file is not None:
        try:
            keys += [line.strip() for line in keys_file.read_text().splitlines() if line.strip()]
        except OSError as exc:
            raise InvalidRequestError(f"cannot read --api-keys-file {str(keys_file)!r}: {exc}") from None
    return keys


@app.command()
def serve(
    backend: Annotated[
        str,
        typer.Option(
            envvar="TTC_AGENT_BACKEND",
            callback=_check_backend,
            help="transformers, vllm, or the /v1 URL of an OpenAI-compatible server.",
        ),
    ] = "transformers",
    model: Annotated[
        str | None,
        typer.Option(envvar="TTC_AGENT_MODEL", help="Model name or folder (local backends), or the served model."),
    ] = None,
    probes: Annotated[
        Path | None,
        typer.Option(
            envvar="TTC_AGENT_PROBES",
            help="Probe bundle folder (default: the one shipped for the model: --model, or the served model --tokenizer names).",
        ),
    ] = None,
    store: Annotated[
        str,
        typer.Option(
            envvar="TTC_AGENT_STORE",
            help="Session budgets: memory, sqlite:PATH or postgresql://... (shared by replicas).",
        ),
    ] = "memory",
    host: Annotated[str, typer.Option(envvar="TTC_AGENT_HOST", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="TTC_AGENT_PORT", help="Port to listen on.")] = 8080,
    model_name: Annotated[
        str, typer.Option(envvar="TTC_AGENT_MODEL_NAME", help="The model name clients send.")
    ] = "ttc",
    api_keys_file: Annotated[
        Path | None,
        typer.Option(
            envvar="TTC_AGENT_API_KEYS_FILE",
            help="File of API keys, one a line (also: $TTC_AGENT_API_KEYS, comma-separated).",
        ),
    ] = None,
    session_tokens: Annotated[
        int | None,
        typer.Option(
            envvar="TTC_AGENT_SESSION_TOKENS",
            help="Token budget of sessions made on first use (default: sessions must be created).",
        ),
    ] = None,
    session_seconds: Annotated[
        float | None,
        typer.Option(envvar="TTC_AGENT_SESSION_SECONDS", help="Seconds budget of sessions made on first use."),
    ] = None,
    max_tokens: Annotated[
        int, typer.Option(envvar="TTC_AGENT_MAX_TOKENS", help="Largest max_tokens a request may ask for.")
    ] = 4096,
    max_request_bytes: Annotated[
        int, typer.Option(envvar="TTC_AGENT_MAX_REQUEST_BYTES", help="Largest request body, in bytes.")
    ] = 1_000_000,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="TTC_AGENT_API_KEY", help="Bearer token for the backend server (default: $OPENAI_API_KEY)."
        ),
    ] = None,
    tokenizer: Annotated[
        str | None,
        typer.Option(
            envvar="TTC_AGENT_TOKENIZER",
            help="The served model's name or folder: count prompt tokens here instead of asking the server.",
        ),
    ] = None,
    dtype: Annotated[
        Dtype | None,
        typer.Option(
            envvar="TTC_AGENT_DTYPE",
            help="The vllm backend's compute dtype (default: bfloat16 where the CPU has avx512_bf16 or AMX, else float32).",
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            envvar="TTC_AGENT_STRICT",
            help="Refuse the OpenAI request fields the engine decides (top_p, seed, a temperature other than 0...) instead of ignoring them and naming them in x-ttc-ignored.",
        ),
    ] = False,
    keep_alive_seconds: Annotated[
        float,
        typer.Option(
            envvar="TTC_AGENT_KEEP_ALIVE_SECONDS",
            help="Seconds between SSE comments while a streamed request's strategy runs.",
        ),
    ] = 15.0,
    log_level: Annotated[
        LogLevel,
        typer.Option(
            envvar="TTC_AGENT_LOG_LEVEL", help="Server log level; info and debug also log every request (access log)."
        ),
    ] = LogLevel.warning,
    extract: Annotated[
        str | None,
        typer.Option(envvar="TTC_AGENT_EXTRACT", help="Your workload's answer reader as module:function, for votes."),
    ] = None,
) -> None:
    """Serve an OpenAI-compatible endpoint (/v1/chat/completions, /v1/models, /v1/sessions,
    /health): each request gets the strategy the probes pick, and requests naming a session
    (header X-TTC-Session, or the user field) share its budget across every replica using the
    same --store. Every option is also read from the environment (TTC_AGENT_ and the option's
    name, e.g. TTC_AGENT_PORT). A request's max_tokens is each sample's cap (up to --max-tokens); the shipped
    bundles are fitted on arithmetic at 96 (reference model) or 64 (smollm2-135m) tokens a
    sample, and a response says in its x-ttc-warning header when a request's cap is beyond that."""
    import uvicorn

    from ttc_agent.demo import SHIPPED_BUNDLES, SHIPPED_PROBES, shipped_probes
    from ttc_agent.nodes import TTCEngine
    from ttc_agent.probes import ProbeBundle
    from ttc_agent.server import ChatService, SessionDefaults, create_app

    try:
        keys = _api_keys(api_keys_file)
        budgets = _store(store)
        local = not backend.startswith(("http://", "https://"))
        if tokenizer is not None and local:
            raise InvalidRequestError(f"--tokenizer is for server backends, not {backend!r}")
        chosen = _backend(backend, model, api_key, dtype, **({"tokenizer": tokenizer} if tokenizer else {}))
        # A local model gets the bundle shipped for it; a server's model is known by --tokenizer
        # when that names a model a bundle is shipped for (else the embedded model's, unchecked).
        shipped_for = SHIPPED_BUNDLES.get(tokenizer or "")
        named = shipped_for is not None
        if probes is not None:
            bundle = ProbeBundle.load(probes, fingerprint=chosen.fingerprint() if local else None)
        elif local:
            bundle = shipped_probes(chosen)
        else:
            bundle = ProbeBundle.load(shipped_for or SHIPPED_PROBES)
        engine = TTCEngine(chosen, bundle, pool=budgets, extract=_workload(extract, None)[0])
        given = session_tokens is not None or session_seconds is not None
        defaults = SessionDefaults(session_tokens, session_seconds) if given else None
        service = ChatService(
            engine, budgets, model_name=model_name, max_tokens=max_tokens, defaults=defaults, strict=strict
        )
    except TTCError as exc:
        raise _fail(exc) from exc
    if not keys:
        console.print("[yellow]no API keys: anyone who can reach the port may call it[/yellow]")
    if probes is None and not local and not named:
        console.print(
            "[yellow]the shipped probes were fitted on smollm2-135m and are not checked against a server's model: "
            "pass --tokenizer with the served model's name if a bundle is shipped for it "
            f"({', '.join(SHIPPED_BUNDLES)}), or fit a bundle on your model's traces and pass --probes[/yellow]"
        )
    where = type(budgets).__name__
    console.print(
        f"serving {model_name!r} ({chosen.model_name}) on http://{host}:{port}/v1, session budgets in {where}"
    )
    app_ = create_app(service, keys, max_request_bytes=max_request_bytes, keep_alive_seconds=keep_alive_seconds)
    level = log_level.value
    uvicorn.run(app_, host=host, port=port, log_level=level, access_log=level in ("info", "debug"))


@app.command()
def model(
    name: Annotated[str, typer.Argument(help="A registered model name.")] = "smollm2-135m",
) -> None:
    """Print a named model's safetensors folder (converting it from its wheels on first use), e.g.
    for ``python -m vllm.entrypoints.openai.api_server --model $(ttc-agent model qwen2.5-coder-0.5b)``."""
    from ttc_agent.backends.models import model_dir

    try:
        print(model_dir(name))
    except TTCError as exc:
        raise _fail(exc) from exc


def _levels(text: str, option: str = "--levels") -> tuple[int, ...]:
    """Comma-separated integers, e.g. ``"1,2,3"``."""
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise InvalidRequestError(f"{option} must be comma-separated integers such as 1,2,3, got {text!r}") from None


def _problems(
    dataset: str,
    limit: int | None,
    data: Path | None,
    per_level: int,
    levels: str,
    grading: str,
    extract: str | None,
    grade: str | None,
    seed: int = 0,
) -> list[Problem]:
    """The problems a collecting command works on: the dataset (the arithmetic task built from
    its level options), answered and graded by the workload's functions when given."""
    from ttc_agent.evaluation.datasets import load_dataset, with_workload

    kwargs: dict[str, int | str | tuple[int, ...]] = (
        {"per_level": per_level, "levels": _levels(levels), "seed": seed, "grading": grading}
        if dataset == "arithmetic"
        else {}
    )
    return with_workload(load_dataset(dataset, limit, data, **kwargs), *_workload(extract, grade))


def _workload(extract: str | None, grade: str | None) -> tuple[Extractor | None, Grader | None]:
    """The ``--extract`` and ``--grade`` functions, imported (``None`` where not given)."""
    from ttc_agent.answers import load_callable

    return (
        None if extract is None else load_callable(extract, "--extract function"),
        None if grade is None else load_callable(grade, "--grade function"),
    )


def _fail(exc: Exception) -> typer.Exit:
    """A command that ran and failed: the error on stderr, exit status 1 (click keeps 2 for
    command lines it cannot parse)."""
    err_console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code=1)


if __name__ == "__main__":
    app()
