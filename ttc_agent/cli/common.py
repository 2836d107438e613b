"""Shared pieces of the command line: the Typer app, consoles, option types, backend loading and error handling."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from ttc_agent.answers import Extractor, Grader
from ttc_agent.errors import InvalidRequestError, TTCError
from ttc_agent.extras import needs_extra

if TYPE_CHECKING:
    from ttc_agent.backends.base import Backend
    from ttc_agent.evaluation.datasets import Problem
    from ttc_agent.probes import ProbeBundle, TraceTable


T = TypeVar("T")

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
        callback=_check_dataset,
        help="arithmetic, gsm8k, gsm8k-train, math500, a JSONL file with question/answer, or a decision log "
        "written with record_prompts (its prompts; needs --grade).",
    ),
]


LimitOpt = Annotated[int | None, typer.Option(help="Use the first N problems.")]


DataOpt = Annotated[Path | None, typer.Option(help="Folder holding gsm8k/ and math500/ (default: $TTC_AGENT_DATA).")]


PerLevelOpt = Annotated[int, typer.Option(help="Arithmetic questions per level.")]


LevelOpt = Annotated[
    list[int] | None,
    typer.Option(
        "--level", help="An arithmetic level to use; repeat for more (default: 1, 2 and 3).", show_default=False
    ),
]
LevelsOpt = Annotated[
    str | None, typer.Option(hidden=True, help="Deprecated: comma-separated levels; repeat --level instead.")
]


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


def cli_backend(
    backend: str, model: str | None, api_key: str | None = None, dtype: Dtype | None = None, **options: str | float
) -> Backend:
    from ttc_agent.backends import LOCAL_BACKENDS, load_backend

    if api_key is not None and backend in LOCAL_BACKENDS:
        raise InvalidRequestError(f"--api-key is for server backends, not {backend!r}")
    if dtype is not None:
        if backend != "vllm":
            raise InvalidRequestError(f"--dtype {dtype.value} is for the vllm backend, not {backend!r}")
        options["dtype"] = dtype.value
    if backend in LOCAL_BACKENDS:
        quiet_model_loading()
    with console.status(f"loading {backend} backend..."):
        return load_backend(backend, model, **({"api_key": api_key} if api_key else {}), **options)


def quiet_model_loading() -> None:
    """Keep transformers' and the hub's progress bars out of the command's output."""
    with needs_extra("local", "loading a model in this process"):
        import transformers
        from huggingface_hub.utils import disable_progress_bars  # type: ignore[attr-defined]

    transformers.logging.disable_progress_bar()
    transformers.logging.set_verbosity_error()
    disable_progress_bars()


def emit(document: object) -> None:
    """One JSON document on stdout (``--json``)."""
    import json

    print(json.dumps(document, indent=2, default=float))


def parse_levels(text: str, option: str = "--levels") -> tuple[int, ...]:
    """Comma-separated integers, e.g. ``"1,2,3"`` (the deprecated form of a repeated option)."""
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise InvalidRequestError(f"{option} must be comma-separated integers such as 1,2,3, got {text!r}") from None


def repeated(
    given: list[T] | None,
    deprecated: str | None,
    default: tuple[T, ...],
    option: str,
    old: str,
    parse: Callable[[str, str], tuple[T, ...]],
) -> tuple[T, ...]:
    """The values of a repeatable option (``--level 1 --level 2``), or of its deprecated
    comma-separated form (``--levels 1,2``: read by ``parse(text, old)``, with a note on stderr);
    ``default`` when neither."""
    if deprecated is not None:
        if given:
            raise InvalidRequestError(f"give {option} (repeated) or the deprecated {old}, not both")
        err_console.print(f"{old} is deprecated: repeat {option} instead ({option} A {option} B)")
        return parse(deprecated, old)
    return tuple(given) if given else default


def repeated_ints(
    given: list[int] | None, deprecated: str | None, default: tuple[int, ...], option: str, old: str
) -> tuple[int, ...]:
    """`repeated` for integers (``--level``, ``--layer``)."""
    return repeated(given, deprecated, default, option, old, parse_levels)


def comma_separated(text: str, option: str) -> tuple[str, ...]:
    """Comma-separated names, e.g. ``"text_stats,sentence_embedding"``."""
    return tuple(x.strip() for x in text.split(",") if x.strip())


def problems_for(
    dataset: str,
    limit: int | None,
    data: Path | None,
    per_level: int,
    levels: tuple[int, ...],
    grading: str,
    extract: str | None,
    grade: str | None,
    seed: int = 0,
) -> list[Problem]:
    """The problems a collecting command works on: the dataset (the arithmetic task built from
    its level options), answered and graded by the workload's functions when given."""
    from ttc_agent.evaluation.datasets import load_dataset, with_workload

    kwargs: dict[str, int | str | tuple[int, ...]] = (
        {"per_level": per_level, "levels": levels, "seed": seed, "grading": grading} if dataset == "arithmetic" else {}
    )
    problems = load_dataset(dataset, limit, data, **kwargs)
    if grade is None and any(not p.answer for p in problems):
        raise InvalidRequestError(
            f"{dataset} holds prompts without gold answers (a decision log): pass --grade module:function, a "
            "grader that judges a reply alone (it gets the gold answer ''), so the traces say which runs were right"
        )
    return with_workload(problems, *workload_hooks(extract, grade))


def workload_hooks(extract: str | None, grade: str | None) -> tuple[Extractor | None, Grader | None]:
    """The ``--extract`` and ``--grade`` functions, imported (``None`` where not given)."""
    from ttc_agent.answers import load_callable

    return (
        None if extract is None else load_callable(extract, "--extract function"),
        None if grade is None else load_callable(grade, "--grade function"),
    )


def fail(exc: Exception) -> typer.Exit:
    """A command that ran and failed: the error on stderr, exit status 1 (click keeps 2 for
    command lines it cannot parse)."""
    err_console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code=1)


def held_out(traces: Path, probes: Path) -> tuple[ProbeBundle, TraceTable]:
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


def num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def ci_text(ci: list[float] | None) -> str:
    return "" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def budget_left(budget: dict[str, Any] | None) -> str:
    """What a workflow budget had left after a step: "1200 tok, 31.0 s"."""
    if not budget:
        return ""
    after = budget["after"]
    parts = [f"{after['tokens_left']:.0f} tok"] if after["tokens_left"] is not None else []
    parts += [f"{after['seconds_left']:.1f} s"] if after["seconds_left"] is not None else []
    return ", ".join(parts)
