"""The ``ttc-agent`` command line."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ttc_agent.errors import TTCError

app = typer.Typer(help="Latency- and token-aware test-time compute for LLM calls.", no_args_is_help=True, add_completion=False)
console = Console()

BackendOpt = Annotated[str, typer.Option(help="'transformers', 'vllm', or an OpenAI-compatible server URL (http://host:port/v1).")]
ModelOpt = Annotated[str | None, typer.Option(help="Local model folder (default: the embedded SmolLM2-135M-Instruct) or served model name.")]


def _backend(backend: str, model: str | None):
    from ttc_agent.backends import load_backend

    with console.status(f"loading {backend} backend..."):
        return load_backend(backend, model)


def _cost_row(table: Table, name: str, outcome) -> None:
    c = outcome.cost
    table.add_row(name, str(outcome.answer), str(c.prompt_tokens), str(c.completion_tokens), str(c.verifier_tokens), str(c.rounds), f"{c.seconds:.2f}")


def _cost_table(title: str) -> Table:
    table = Table(title=title)
    for col in ("strategy", "answer", "prompt tok", "completion tok", "verifier tok", "rounds", "seconds"):
        table.add_column(col, justify="left" if col in ("strategy", "answer") else "right", no_wrap=col == "strategy")
    return table


@app.command()
def demo(
    question: Annotated[str, typer.Option(help="The question to answer.")] = "What is 23 + 19?",
    backend: BackendOpt = "transformers",
    model: ModelOpt = None,
    max_tokens: Annotated[int, typer.Option(help="Tokens per sample.")] = 64,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
) -> None:
    """Answer a question with greedy decoding and with best-of-4 (majority vote), and print
    both answers with their exact cost."""
    from ttc_agent.strategies import BestOfN, Greedy

    try:
        b = _backend(backend, model)
        table = _cost_table(f"{question}  [{b.model_name}]")
        for strategy in (Greedy(max_tokens=max_tokens), BestOfN(4, select="majority", max_tokens=max_tokens, seed=seed)):
            with console.status(f"running {strategy.spec}..."):
                outcome = strategy.run(question, b)
            _cost_row(table, strategy.spec, outcome)
            console.print(f"[bold]{strategy.spec}[/bold]: {outcome.text.strip()[:300]}")
    except TTCError as exc:
        raise _fail(exc) from exc
    console.print(table)


@app.command()
def run(
    question: Annotated[str, typer.Argument(help="The question to answer.")],
    strategy: Annotated[str, typer.Option(help="Strategy spec, e.g. 'best_of_n(8, select=majority)' or 'beam(width=2, expand=2)'.")] = "greedy",
    verifier: Annotated[str | None, typer.Option(help="'logprob', 'logprob:min' or 'judge' (default: the strategy's own).")] = None,
    backend: BackendOpt = "transformers",
    model: ModelOpt = None,
    max_tokens: Annotated[int, typer.Option(help="Tokens per sample (per beam for beam search).")] = 256,
    seed: Annotated[int | None, typer.Option(help="Sampling seed.")] = None,
) -> None:
    """Answer QUESTION with one strategy; print the answer, every candidate with its score, and the cost."""
    from ttc_agent.strategies import parse_strategy

    try:
        s = parse_strategy(strategy, max_tokens=max_tokens, seed=seed) if strategy != "greedy" else parse_strategy(strategy, max_tokens=max_tokens)
        b = _backend(backend, model)
        with console.status(f"running {s.spec}..."):
            outcome = s.run(question, b, verifier)
    except TTCError as exc:
        raise _fail(exc) from exc
    console.print(f"[bold]answer:[/bold] {outcome.answer if outcome.has_answer else '(no answer)'}")
    console.print(outcome.text.strip())
    cands = Table(title="candidates")
    for col in ("#", "answer", "score", "tokens", "finish", "text"):
        cands.add_column(col)
    for i, c in enumerate(outcome.candidates):
        score = "-" if c.score is None else f"{c.score:.3f}"
        cands.add_row(str(i), str(c.answer), score, str(c.num_tokens), c.finish_reason, c.text.strip().replace("\n", " ")[:70])
    console.print(cands)
    table = _cost_table("cost")
    _cost_row(table, s.spec, outcome)
    console.print(table)


@app.command()
def model() -> None:
    """Print the embedded model's safetensors folder (converting the GGUF on first use), e.g. for
    ``python -m vllm.entrypoints.openai.api_server --model $(ttc-agent model)``."""
    from ttc_agent.backends.embedded import embedded_model_dir

    try:
        print(embedded_model_dir())
    except TTCError as exc:
        raise _fail(exc) from exc


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code=2)


if __name__ == "__main__":
    app()
