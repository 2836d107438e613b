"""Trace collection: run every strategy of a menu on every problem, k times, and record it.

Traces go to ``OUT/traces.jsonl``, one JSON record per (problem, strategy, repeat), appended
and flushed as each run finishes: a crash loses at most the runs in flight, and a restart skips
what is done. ``OUT/meta.json`` records the menu and the backend's fingerprint; resuming into a
folder made with another menu or model is refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ttc_agent.backends.base import Backend
from ttc_agent.backends.fingerprint import same_model
from ttc_agent.errors import InvalidRequestError
from ttc_agent.evaluation.datasets import Problem
from ttc_agent.evaluation.records import SCHEMA_VERSION, outcome_record
from ttc_agent.strategies.menu import Menu
from ttc_agent.validation import POSITIVE_INT, check_param

TRACES = "traces.jsonl"
META = "meta.json"


def run_seed(problem_id: str, repeat: int) -> int:
    """A stable sampling seed for one problem and repeat."""
    return int(hashlib.sha256(f"{problem_id}/{repeat}".encode()).hexdigest()[:8], 16)


def read_traces(folder: str | Path) -> list[dict[str, Any]]:
    """All trace records of a collection folder (a half-written last line is skipped)."""
    return read_records(Path(folder) / TRACES, SCHEMA_VERSION, "traces", "ttc-agent collect")


def read_records(path: Path, schema: int | str, what: str, command: str) -> list[dict[str, Any]]:
    """The JSON records of an appended file (``traces.jsonl``, ``pool.jsonl``), each checked for
    ``schema``; a line cut by a kill (the record in flight) is skipped."""
    if not path.is_file():
        raise InvalidRequestError(f"no {what} at {str(path)!r}; run `{command}` first")
    records = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # the record in flight when a previous collection was killed
        if rec.get("schema") != schema:
            raise InvalidRequestError(
                f"{path} has schema {rec.get('schema')!r}; this ttc-agent reads {what} schema {schema}"
            )
        records.append(rec)
    return records


def traced_model_name(meta: Mapping[str, Any]) -> str | None:
    """The registered model name (`ttc_agent.backends.models.MODELS`) a collection's ``meta``
    records for its backend, or ``None`` when the model was not a registered one (older
    folders of the embedded model record none)."""
    source = (meta.get("backend") or {}).get("source")
    name = source.get("name") if isinstance(source, Mapping) else None
    return name if isinstance(name, str) else None


def read_meta(folder: str | Path, kind: str = "trace folder") -> dict[str, Any]:
    """The collection's menu, backend fingerprint and dataset (a ``kind`` of folder: a trace
    folder, or a pool's)."""
    path = Path(folder) / META
    if not path.is_file():
        raise InvalidRequestError(f"no {META} in {str(folder)!r}: not a {kind}")
    meta: dict[str, Any] = json.loads(path.read_text())
    return meta


def write_trace_folder(folder: str | Path, meta: dict[str, Any], records: Sequence[dict[str, Any]]) -> Path:
    """Write a whole trace folder at once, for traces made otherwise than by `collect` (exported
    from another benchmark, or re-selected from recorded samples).

    ``meta`` needs the ``menu`` (a `Menu` dict) and the ``backend`` fingerprint; every record's
    strategy must be on the menu. Both files are written to temporary names and renamed into
    place, so a failure leaves the folder as it was; an existing folder is replaced.
    """
    folder = Path(folder)
    missing = [k for k in ("menu", "backend") if k not in meta]
    if missing:
        raise InvalidRequestError(f"trace folder meta needs {missing}; got keys {sorted(meta)}")
    specs = set(Menu.from_dict(meta["menu"]).specs)
    stray = sorted({r.get("strategy") for r in records} - specs, key=str)
    if stray:
        raise InvalidRequestError(
            f"records with strategies {stray} are not on the menu (canonical specs: {sorted(specs)})"
        )
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"schema": SCHEMA_VERSION, **meta}
    texts = {META: json.dumps(meta, indent=2) + "\n", TRACES: "".join(json.dumps(r) + "\n" for r in records)}
    for name, text in texts.items():
        (folder / f".{name}.tmp").write_text(text)
    for name in texts:
        (folder / f".{name}.tmp").replace(folder / name)
    return folder


def _check_or_write_meta(out: Path, meta: dict[str, Any]) -> None:
    path = out / META
    if path.is_file():
        old = json.loads(path.read_text())
        old_backend = old.get("backend") or {}
        old_serving, new_serving = serving_settings(old_backend), serving_settings(meta["backend"])
        model_kept = same_model(old_backend, meta["backend"]) is not False
        if not (model_kept and old_serving == new_serving):
            old_dtype = old_serving.get("dtype")
            only_dtype = model_kept and old_serving == {**new_serving, "dtype": old_dtype}
            hint = (
                f"resume it in {old_dtype} (--dtype {old_dtype}; VLLMBackend(dtype={old_dtype!r})) or use a new folder"
                if only_dtype
                else "use a new folder"
            )
            raise InvalidRequestError(
                f"{out} holds traces made with another backend: {old.get('backend')!r}, not {meta['backend']!r}; "
                + hint
            )
        if old.get("menu") == meta["menu"]:
            return
        old_menu = old.get("menu") or {}
        extends = old_menu.get("defaults") == meta["menu"]["defaults"] and set(old_menu.get("strategies", ())) <= set(
            meta["menu"]["strategies"]
        )
        if not extends:
            raise InvalidRequestError(
                f"{out} holds traces made with another menu: {old_menu!r}, not {meta['menu']!r} (a menu may only add "
                "strategies with the same defaults); use a new folder"
            )
        # The menu grew: record it, keep every trace, and run only the new strategies.
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{META}.tmp"
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    tmp.replace(path)


def serving_settings(fingerprint: dict[str, Any]) -> dict[str, Any]:
    """What must match, beside the model itself (`same_model`), to resume a collection: how the
    backend serves it (its kind, the model's name, dtype and other settings)."""
    return {k: v for k, v in fingerprint.items() if k not in ("source", "weights")}


def collect(
    problems: Sequence[Problem],
    menu: Menu,
    backend: Any,
    out: str | Path,
    *,
    repeats: int = 1,
    concurrency: int = 1,
    dataset: str = "",
    progress: bool = True,
) -> int:
    """Run the menu on the problems, appending to ``out``; returns runs done now.

    Sampling strategies run ``repeats`` times per problem (so accuracy is a probability);
    deterministic ones (greedy) run once.

    ``concurrency > 1`` keeps that many runs in flight on the event loop (server backends and
    the in-process vLLM engine batch them; transformers runs one at a time).
    """
    check_param("repeats", repeats, POSITIVE_INT, owner="collect")
    check_param("concurrency", concurrency, POSITIVE_INT, owner="collect")
    out = Path(out)
    _check_or_write_meta(
        out, {"schema": SCHEMA_VERSION, "menu": menu.to_dict(), "backend": backend.fingerprint(), "dataset": dataset}
    )
    drop_partial_line(out / TRACES)
    done = (
        {(r["problem_id"], r["strategy"], r["repeat"]) for r in read_traces(out)} if (out / TRACES).is_file() else set()
    )
    runs = {spec: 1 if menu.strategy(spec).deterministic else repeats for spec in menu.specs}
    todo = [
        (p, spec, k) for p in problems for spec in menu.specs for k in range(runs[spec]) if (p.id, spec, k) not in done
    ]
    if not todo:
        return 0
    cpu = f"{cpu_name()} x{os.cpu_count()}"
    columns = (
        TextColumn("collect"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with (out / TRACES).open("a") as sink, Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("collect", total=len(todo))
        if concurrency == 1:
            for p, spec, k in todo:
                outcome = menu.strategy(spec, seed=run_seed(p.id, k)).run(p, backend)
                _write(sink, outcome_record(p, outcome, repeat=k, finished_at=utc_now(), cpu=cpu))
                bar.advance(task)
        else:
            asyncio.run(_collect_async(todo, menu, backend, sink, lambda: bar.advance(task), concurrency, cpu))
    return len(todo)


async def _collect_async(
    todo: Sequence[tuple[Problem, str, int]],
    menu: Menu,
    backend: Backend,
    sink: TextIO,
    advance: Callable[[], None],
    concurrency: int,
    cpu: str,
) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(p: Problem, spec: str, k: int) -> None:
        async with gate:
            outcome = await menu.strategy(spec, seed=run_seed(p.id, k)).arun(p, backend)
        _write(sink, outcome_record(p, outcome, repeat=k, finished_at=utc_now(), cpu=cpu))
        advance()

    await asyncio.gather(*(one(*t) for t in todo))


def drop_partial_line(path: Path) -> None:
    """Cut a half-written last record (a collection killed mid-write) off the trace file, so
    the next record starts on its own line; the cut run is simply run again."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb+") as f:
        data = f.read()
        if data.endswith(b"\n"):
            return
        f.truncate(data.rfind(b"\n") + 1)


def cpu_name() -> str:
    """This machine's CPU model (``/proc/cpuinfo``'s model name where there is one): traced
    seconds depend on it (the same sampling run takes twice as long on one 2-core machine as
    on another), so records and benchmark results name it."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)
    return model or platform.processor() or platform.machine()


def utc_now() -> str:
    """UTC now to the second (ISO 8601): when a run finished, to audit what ran beside it."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write(sink: TextIO, record: dict[str, Any]) -> None:
    sink.write(json.dumps(record) + "\n")
    sink.flush()


class _RateColumn(ProgressColumn):
    """Runs per minute."""

    def render(self, task: Task) -> Text:
        return Text("" if task.speed is None else f"{task.speed * 60:.1f} runs/min")
