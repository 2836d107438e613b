"""`ttc-agent demo` and `ttc-agent run`: answer questions with the engine or one strategy."""

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
    DtypeOpt,
    JsonOpt,
    Manager,
    ModelOpt,
    app,
    budget_left,
    cli_backend,
    console,
    emit,
    fail,
    quiet_model_loading,
)
from ttc_agent.cli.tables import cost_table, make_table


@app.command(rich_help_panel="Run")
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

    The reference model's shipped bundle was fitted on trace pools of GSM8K train and
    arithmetic questions at 512 tokens a sample; smollm2-135m's on arithmetic at 64."""
    import time

    from ttc_agent.backends import TransformersBackend
    from ttc_agent.budgets import WorkflowBudget
    from ttc_agent.demo import make_graph, numbers, shipped_probes
    from ttc_agent.nodes import TTCContext, TTCEngine, TTCNode
    from ttc_agent.plotting import short_label
    from ttc_agent.probes import ProbeBundle

    try:
        given = max_tokens is not None or max_seconds is not None
        budget = WorkflowBudget(max_tokens=max_tokens, max_seconds=max_seconds) if given else None
        quiet_model_loading()
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
        raise fail(exc) from exc
    title = f"{question}  [{backend.model_name}]" + (
        f", budget {_budget_text(max_tokens, max_seconds)} ({manager.value})" if budget else ""
    )
    columns = ["step", "question", "strategy", "P(right)", "tokens", "seconds", "answer"]
    rows = []
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
        rows.append([*cells, *([budget_left(step["budget"])] if budget else [])])
    console.print(make_table(title, [*columns, *(["budget left"] if budget else [])], rows, wrap=("question",)))
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


@app.command(rich_help_panel="Run")
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
        b = cli_backend(backend, model, api_key, dtype)
        with console.status(f"running {s.spec}..."):
            outcome = s.run(question, b, verifier)
    except TTCError as exc:
        raise fail(exc) from exc
    if as_json:
        emit({"strategy": s.spec, "answer": outcome.answer, "text": outcome.text, "stop_reason": outcome.stop_reason,
               "stages": outcome.stages, "cost": outcome.cost.as_dict(),
               "candidates": [{"answer": c.answer, "score": c.score, "tokens": c.num_tokens, "finish": c.finish_reason,
                               "confidence": c.confidence, "text": c.text} for c in outcome.candidates]})  # fmt: skip
        return
    console.print(f"[bold]answer:[/bold] {outcome.answer if outcome.has_answer else '(no answer)'}")
    console.print(outcome.text.strip())
    rows = [
        (str(i), str(c.answer), "-" if c.score is None else f"{c.score:.3f}", str(c.num_tokens), c.finish_reason,
         c.text.strip().replace("\n", " ")[:70])
        for i, c in enumerate(outcome.candidates)
    ]  # fmt: skip
    console.print(make_table("candidates", ("#", "answer", "score", "tokens", "finish", "text"), rows, wrap=("text",)))
    console.print(cost_table("cost", [(s.spec, outcome)]))
