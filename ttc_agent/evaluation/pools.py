"""Trace pools: each question's samples generated once, for every sample-based strategy to replay.

A pool folder holds, per question, one greedy run and a pool of samples per temperature, all at
one per-sample cap, each sample with its text, answer, correctness, tokens, finish reason and
the confidence summaries the strategies read (DeepConf's lowest sliding-window mean token
logprob, the mean token logprob, and the sliding-window means along the sample so DeepConf's
online cut can be replayed). Majority voting over k of them, weighted and confident voting,
adaptive self-consistency and DeepConf are then replayed from the pool instead of being
generated separately (`ttc_agent.evaluation.replay_pool`).

Files: ``OUT/pool.jsonl`` (one record per question and temperature, appended and flushed as each
batched call finishes; a line cut by a kill is dropped and that group generated again) and
``OUT/meta.json`` (the backend's fingerprint, the temperatures and their sample counts, the cap).
Resuming into a folder made with another model, temperature set or cap is refused, naming both.
Several questions share one backend call (``questions_per_call``), which batched backends (vLLM
in process or served) run together; each record keeps the call's seconds and shape.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ttc_agent.backends.base import Backend, Completion, SamplingParams
from ttc_agent.backends.fingerprint import same_model
from ttc_agent.errors import InvalidRequestError
from ttc_agent.evaluation.collect import cpu_name, drop_partial_line, read_meta, read_records, serving_settings, utc_now
from ttc_agent.evaluation.datasets import Problem
from ttc_agent.strategies.selection import CONFIDENCE_WINDOW, confidence
from ttc_agent.validation import POSITIVE_INT, Interval, check_param

POOL = "pool.jsonl"
META = "meta.json"
POOL_SCHEMA = "pool-1"
#: Sliding-window means are kept every this many tokens (DeepConf's cut replays to within it).
WINDOW_STRIDE = 8
_TEMPERATURE = Interval(float, 0, 2, closed="right")


@dataclass(frozen=True)
class PoolSpec:
    """What a pool draws per question: ``samples`` per temperature (e.g. ``{0.3: 16, 0.7: 4}``)
    besides one greedy run, every sample capped at ``max_tokens``."""

    samples: Mapping[float, int]
    max_tokens: int = 384

    def __post_init__(self) -> None:
        if not self.samples:
            raise InvalidRequestError("a pool needs at least one temperature to sample at")
        for temperature, count in self.samples.items():
            check_param("temperature", temperature, _TEMPERATURE, owner="a trace pool")
            check_param(f"samples at temperature {temperature:g}", count, POSITIVE_INT, owner="a trace pool")
        check_param("max_tokens", self.max_tokens, POSITIVE_INT, owner="a trace pool")
        object.__setattr__(self, "samples", {float(t): int(n) for t, n in sorted(self.samples.items())})

    @classmethod
    def parse(cls, items: Sequence[str], max_tokens: int = 384) -> PoolSpec:
        """From ``TEMPERATURE=SAMPLES`` strings (``["0.3=16", "0.7=4"]``), as the CLI takes them."""
        samples: dict[float, int] = {}
        for item in items:
            t, sep, n = item.partition("=")
            try:
                temperature, count = float(t), int(n)
            except ValueError:
                raise InvalidRequestError(
                    f"a pool temperature is TEMPERATURE=SAMPLES (e.g. 0.3=16), got {item!r}"
                ) from None
            if not sep or temperature in samples:
                raise InvalidRequestError(f"a pool temperature is TEMPERATURE=SAMPLES, each once; got {list(items)}")
            samples[temperature] = count
        return cls(samples, max_tokens)

    def to_dict(self) -> dict[str, Any]:
        return {"samples": {f"{t:g}": n for t, n in self.samples.items()}, "max_tokens": self.max_tokens}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PoolSpec:
        """The spec a pool folder's meta.json records (`to_dict`'s inverse)."""
        return cls({float(t): int(n) for t, n in data["samples"].items()}, int(data["max_tokens"]))


def sample_seed(problem_id: str, temperature: float) -> int:
    """A stable sampling seed for one question's pool at one temperature."""
    return int(hashlib.sha256(f"pool/{problem_id}/{temperature:g}".encode()).hexdigest()[:8], 16)


def window_means(
    logprobs: Sequence[float], window: int = CONFIDENCE_WINDOW, stride: int = WINDOW_STRIDE
) -> list[float]:
    """The mean token logprob of each ``window`` consecutive tokens, ending at every ``stride``-th
    token (the whole reply's mean when it is shorter than a window), rounded to 1e-3."""
    values = np.asarray(logprobs, dtype=float)
    if values.size <= window:
        return [round(float(values.mean()), 3)] if values.size else []
    means = np.convolve(values, np.ones(window), mode="valid") / window  # window ending at token window-1+i
    return [round(float(m), 3) for m in means[::stride]]


def sample_record(problem: Problem, c: Completion) -> dict[str, Any]:
    """One sample of a pool: text, answer, correctness, tokens, finish and confidence summaries."""
    answer = problem.extract(c.text)
    lp = c.token_logprobs
    return {
        "text": c.text,
        "answer": answer,
        "correct": problem.is_correct(answer),
        "tokens": c.num_tokens,
        "finish": c.finish_reason,
        "confidence": None if lp is None else confidence(lp),
        "mean_logprob": None if not lp else round(float(np.mean(lp)), 4),
        "window_means": None if lp is None else window_means(lp),
    }


def read_pool(folder: str | Path) -> list[dict[str, Any]]:
    """Every record of a pool folder (a line cut by a kill is skipped)."""
    return read_records(Path(folder) / POOL, POOL_SCHEMA, "trace pool", "ttc-agent pool")


def complete_questions(records: Sequence[Mapping[str, Any]], spec: PoolSpec) -> list[dict[str, Any]]:
    """The records of the questions whose pool is whole: the greedy run and every temperature of
    ``spec`` with all its samples (a pool still being drawn has questions with only some)."""
    temperatures = {0.0, *spec.samples}
    by_question: dict[str, dict[float, Mapping[str, Any]]] = {}
    for r in records:
        by_question.setdefault(r["problem_id"], {})[float(r["temperature"])] = r
    whole = {
        pid
        for pid, temps in by_question.items()
        if set(temps) >= temperatures and all(len(temps[t]["samples"]) >= n for t, n in spec.samples.items())
    }
    return [dict(r) for r in records if r["problem_id"] in whole and float(r["temperature"]) in temperatures]


def read_pool_meta(folder: str | Path) -> dict[str, Any]:
    """A pool folder's backend fingerprint, pool spec and dataset."""
    return read_meta(folder, "trace pool folder")


def _check_or_write_meta(out: Path, meta: dict[str, Any]) -> None:
    path = out / META
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("kind") != "pool":
            raise InvalidRequestError(
                f"{out} is not a trace pool folder (a whole-menu trace folder?); use a new folder"
            )
        old_backend = old.get("backend") or {}
        if same_model(old_backend, meta["backend"]) is False or serving_settings(old_backend) != serving_settings(
            meta["backend"]
        ):
            raise InvalidRequestError(
                f"{out} holds a pool made with another backend: {old.get('backend')!r}, not {meta['backend']!r}; "
                "use a new folder"
            )
        if old.get("pool") != meta["pool"]:
            raise InvalidRequestError(
                f"{out} holds a pool drawn at {old.get('pool')!r}, not {meta['pool']!r} (temperatures, samples and "
                "max_tokens must match to resume); use a new folder"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{META}.tmp"
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    tmp.replace(path)


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def collect_pool(
    problems: Sequence[Problem],
    backend: Backend,
    out: str | Path,
    spec: PoolSpec,
    *,
    questions_per_call: int = 4,
    dataset: str = "",
    progress: bool = True,
) -> int:
    """Draw each problem's greedy run and samples (`PoolSpec`) into the pool folder ``out``,
    resuming what is there; returns the records written now.

    ``questions_per_call`` questions share each backend call (one greedy call, then one call per
    temperature), so a batched backend generates them together.
    """
    check_param("questions_per_call", questions_per_call, POSITIVE_INT, owner="collect_pool")
    out = Path(out)
    meta = {"kind": "pool", "schema": POOL_SCHEMA, "backend": backend.fingerprint(), "pool": spec.to_dict(),
            "dataset": dataset}  # fmt: skip
    _check_or_write_meta(out, meta)
    drop_partial_line(out / POOL)
    done = {(r["problem_id"], r["temperature"]) for r in read_pool(out)} if (out / POOL).is_file() else set()
    temperatures = [0.0, *spec.samples]
    todo = [(t, [p for p in problems if (p.id, t) not in done]) for t in temperatures]
    total = sum(len(ps) for _, ps in todo)
    if not total:
        return 0
    cpu = f"{cpu_name()} x{os.cpu_count()}"
    columns = (TextColumn("pool"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    written = 0
    with (out / POOL).open("a") as sink, Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("pool", total=total)
        # Question by question group: greedy and every temperature of a group before the next.
        ids = [p.id for p in problems]
        pending = {t: {p.id: p for p in ps} for t, ps in todo}
        for group in _chunks(ids, questions_per_call):
            for t in temperatures:
                batch = [pending[t][pid] for pid in group if pid in pending[t]]
                if batch:
                    written += _draw(batch, backend, spec, t, sink.write, cpu)
                    sink.flush()
                    bar.advance(task, len(batch))
    return written


def _draw(
    batch: list[Problem], backend: Backend, spec: PoolSpec, temperature: float, write: Callable[[str], object], cpu: str
) -> int:
    n = 1 if temperature == 0 else spec.samples[temperature]
    seed = None if temperature == 0 else sample_seed(batch[0].id, temperature)
    params = SamplingParams(n=n, temperature=temperature, max_tokens=spec.max_tokens, logprobs=True, seed=seed)
    gen = backend.generate([p.messages() for p in batch], params)
    finished = utc_now()
    for problem, result in zip(batch, gen.results, strict=True):
        record = {
            "schema": POOL_SCHEMA,
            "dataset": problem.source,
            "problem_id": problem.id,
            "level": problem.level,
            "scope": problem.scope,
            "messages": problem.messages(),
            "gold": problem.answer,
            "temperature": temperature,
            "seed": seed,
            "max_tokens": spec.max_tokens,
            "prompt_tokens": result.prompt_tokens,
            "call": {
                "id": f"{batch[0].id}@{temperature:g}",
                "questions": len(batch),
                "n": n,
                "seconds": round(gen.seconds, 4),
                "completion_tokens": gen.completion_tokens,
            },
            "samples": [sample_record(problem, c) for c in result.completions],
            "finished_at": finished,
            "cpu": cpu,
        }
        write(json.dumps(record) + "\n")
    return len(batch)


def pool_from_traces(records: Sequence[Mapping[str, Any]], spec: str, temperature: float = 0.7) -> list[dict[str, Any]]:
    """Pool records made from whole-menu trace records: each problem's greedy run and the
    recorded samples of its ``spec`` run (a best-of-N, drawn at ``temperature``), so traces
    collected before pools existed can be replayed. Their samples carry confidence and score
    where the traces recorded them, but no window means (DeepConf cannot be replayed on them);
    seconds and call shapes come from the traced runs."""
    runs = {(r["problem_id"], r["strategy"]): r for r in records if r.get("repeat", 0) == 0}
    out: list[dict[str, Any]] = []
    for (pid, strategy), sampled in sorted(runs.items()):
        greedy = runs.get((pid, "greedy"))
        if strategy != spec or greedy is None:
            continue
        for t, run in ((0.0, greedy), (temperature, sampled)):
            out.append({
                "schema": POOL_SCHEMA, "dataset": run["dataset"], "problem_id": pid, "level": run.get("level", 0),
                "scope": run.get("scope", "all"), "messages": run["messages"], "gold": run["gold"],
                "temperature": t, "seed": None, "max_tokens": None, "prompt_tokens": run["prompt_tokens"],
                "call": {"id": f"{pid}@{t:g}", "questions": 1, "n": len(run["candidates"]),
                         "seconds": run["seconds"], "completion_tokens": run["completion_tokens"]},
                "samples": [
                    {"text": c.get("text", ""), "answer": c["answer"], "correct": c["correct"], "tokens": c["tokens"],
                     "finish": c["finish"], "confidence": c.get("confidence"),
                     "mean_logprob": None if not c.get("score") else round(math.log(c["score"]), 4),
                     "window_means": None}
                    for c in run["candidates"]
                ],
                "finished_at": run.get("finished_at"), "cpu": run.get("cpu"), "converted_from": spec,
            })  # fmt: skip
    return out
