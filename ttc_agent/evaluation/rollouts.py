"""Process labels by rollouts (the Math-Shepherd recipe): how often a partial solution ends right.

For a sampled candidate, every proper prefix that ends at a step boundary is continued ``n``
times by the generator (one batched request per candidate); the prefix's value is the share of
continuations whose final answer is right. `collect_rollouts` adds these labels to a trace
folder (``rollouts.jsonl``, append-only and resumable), and ``ttc-agent train-verifier
--process`` trains a process reward model on them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from rich.progress import track

from ttc_agent.backends.base import SamplingParams
from ttc_agent.errors import InvalidRequestError
from ttc_agent.evaluation.collect import read_traces, run_seed
from ttc_agent.evaluation.datasets import Problem

ROLLOUTS = "rollouts.jsonl"
_SENTENCE_END = re.compile(r"(?<=[.!?:])\s+|\n+")


def step_prefixes(text: str, delimiter: str = "\n\n", max_steps: int = 4) -> list[str]:
    """Proper prefixes of ``text`` that end at a step boundary (at most ``max_steps``).

    Steps are split at ``delimiter`` (beam search's step delimiter); a solution written as one
    paragraph is split at line and sentence ends instead, so short answers get steps too.
    """
    if not text.strip():
        return []
    cuts = [m.end() for m in re.finditer(re.escape(delimiter), text) if m.end() < len(text.rstrip())]
    if not cuts:
        cuts = [m.end() for m in _SENTENCE_END.finditer(text) if 0 < m.start() and m.end() < len(text.rstrip())]
    return [text[:c] for c in cuts[:max_steps]]


def rollout_values(
    problem: Problem, text: str, backend: Any, *, n: int = 4, max_tokens: int = 64, seed: int | None = None
) -> list[dict[str, Any]]:
    """Each step prefix of ``text`` with the share of ``n`` continuations that end right."""
    prefixes = step_prefixes(text)
    if not prefixes:
        return []
    prompt = problem.messages()
    gen = backend.generate(
        [[*prompt, {"role": "assistant", "content": p}] for p in prefixes],
        SamplingParams(n=n, temperature=0.7, max_tokens=max_tokens, seed=seed),
    )
    out = []
    for prefix, result in zip(prefixes, gen.results, strict=True):
        right = [problem.is_correct(problem.extract(prefix + c.text)) for c in result.completions]
        out.append({"prefix": prefix, "value": sum(right) / len(right), "rollouts": len(right)})
    out[0]["tokens"] = gen.prompt_tokens + gen.completion_tokens
    out[0]["seconds"] = gen.seconds
    return out


def _pick(candidates: list[dict[str, Any]], per_run: int) -> list[int]:
    """Up to ``per_run`` candidate indices, alternating right and wrong ones where both exist."""
    right = [i for i, c in enumerate(candidates) if c.get("correct") and c.get("text")]
    wrong = [i for i, c in enumerate(candidates) if not c.get("correct") and c.get("text")]
    picked: list[int] = []
    while len(picked) < per_run and (right or wrong):
        for pool in (right, wrong):
            if pool and len(picked) < per_run:
                picked.append(pool.pop(0))
    return picked


def collect_rollouts(
    folder: str | Path,
    backend: Any,
    *,
    n: int = 4,
    per_run: int = 2,
    max_tokens: int = 64,
    problems: set[str] | None = None,
    strategies: set[str] | None = None,
    progress: bool = True,
) -> int:
    """Add rollout labels for up to ``per_run`` candidates of every sampling run in a trace
    folder (only of ``problems`` and ``strategies``, if given); returns how many candidates
    were labelled now."""
    if not isinstance(n, int) or n < 1 or not isinstance(per_run, int) or per_run < 1:
        raise InvalidRequestError(f"rollouts need n >= 1 and per_run >= 1, got n={n!r}, per_run={per_run!r}")
    folder = Path(folder)
    path = folder / ROLLOUTS
    done = {(r["problem_id"], r["strategy"], r["repeat"], r["candidate"]) for r in read_rollouts(folder)}
    todo = []
    for r in read_traces(folder):
        if len(r.get("candidates", [])) < 2 or (problems is not None and r["problem_id"] not in problems):
            continue
        if strategies is not None and r["strategy"] not in strategies:
            continue
        for i in _pick(list(r["candidates"]), per_run):
            if (r["problem_id"], r["strategy"], r["repeat"], i) not in done:
                todo.append((r, i))
    with path.open("a") as sink:
        for r, i in track(todo, description="rollouts", disable=not progress):
            problem = Problem.from_record(r)
            values = rollout_values(
                problem, r["candidates"][i]["text"], backend, n=n, max_tokens=max_tokens, seed=run_seed(problem.id, i)
            )
            row = {"problem_id": r["problem_id"], "strategy": r["strategy"], "repeat": r["repeat"], "candidate": i}
            sink.write(json.dumps({**row, "steps": values}) + "\n")
            sink.flush()
    return len(todo)


def read_rollouts(folder: str | Path) -> list[dict[str, Any]]:
    """The rollout rows of a trace folder (none if it has none); a torn last line is skipped."""
    path = Path(folder) / ROLLOUTS
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # the row in flight when a run died
    return rows
