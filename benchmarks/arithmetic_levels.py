"""Grade arithmetic levels for a model by measurement: greedy accuracy on candidate levels.

Difficulty for a small model is not digit count alone (the reference model answers some
two-digit sums off by ten while getting three-digit sums right), so the levels of its
arithmetic task are fixed by measuring greedy accuracy on candidate operations and operand
ranges, aiming at about 90%, 60%, 30% and 10%. Greedy runs are independent of each other, so
they go through the engine concurrently (only accuracy is measured here, not seconds).
Prints a table with bootstrap intervals and writes benchmarks/results/arithmetic_levels.json.

    .venv/bin/python -m benchmarks.arithmetic_levels [--model qwen2.5-coder-0.5b] [--per-level 30]
"""

from __future__ import annotations

import argparse
import asyncio
import random

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from benchmarks._common import mean_interval, saved_results, write_results  # noqa: E402

#: Candidate levels: a name and (operation, range of a, range of b).
CANDIDATES = {
    "2+2": ("+", (10, 99), (10, 99)),
    "3+3": ("+", (100, 999), (100, 999)),
    "4+4": ("+", (1000, 9999), (1000, 9999)),
    "2x1": ("*", (11, 99), (3, 9)),
    "2x2": ("*", (11, 99), (11, 99)),
    "3x1": ("*", (100, 999), (3, 9)),
    "3x2": ("*", (100, 999), (11, 99)),
    "3x3": ("*", (100, 999), (100, 999)),
}


async def grade(backend, names: list[str], per_level: int, max_tokens: int, concurrency: int) -> dict:
    from ttc_agent.evaluation.datasets import level_problems
    from ttc_agent.strategies import Greedy

    problems = [
        p
        for k, name in enumerate(names)
        for p in level_problems(CANDIDATES[name], per_level, random.Random(1000 + k), k + 1, prefix=name)
    ]
    gate = asyncio.Semaphore(concurrency)
    right: dict[str, list[bool]] = {n: [] for n in names}
    tokens: dict[str, list[int]] = {n: [] for n in names}
    with Progress() as bar:
        task = bar.add_task("greedy", total=len(problems))

        async def one(p):
            async with gate:
                out = await Greedy(max_tokens=max_tokens).arun(p, backend)
            name = p.id.split("-l", 1)[0]
            right[name].append(p.is_correct(out.answer))
            tokens[name].append(out.cost.completion_tokens)
            bar.advance(task)

        await asyncio.gather(*(one(p) for p in problems))
    return {
        name: {
            "spec": list(CANDIDATES[name]),
            "questions": len(right[name]),
            "greedy_accuracy": float(np.mean(right[name])),
            "interval": mean_interval(right[name]),
            "mean_completion_tokens": float(np.mean(tokens[name])),
        }
        for name in names
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--per-level", type=int, default=30)
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    from ttc_agent.backends import VLLMBackend

    names = args.candidates.split(",")
    backend = VLLMBackend(args.model)
    levels = asyncio.run(grade(backend, names, args.per_level, args.max_tokens, args.concurrency))
    table = Table(title=f"greedy accuracy by candidate level, {args.model}")
    for col in ("level", "operation", "questions", "greedy", "95% interval", "tokens"):
        table.add_column(col)
    for name, r in levels.items():
        lo, hi = r["interval"]
        table.add_row(
            name, name, str(r["questions"]), f"{r['greedy_accuracy']:.2f}", f"[{lo:.2f}, {hi:.2f}]",
            f"{r['mean_completion_tokens']:.0f}",
        )  # fmt: skip
    Console().print(table)
    results = saved_results("arithmetic_levels")
    results[args.model] = {"fingerprint": backend.fingerprint(), "max_tokens": args.max_tokens, "levels": levels}
    write_results("arithmetic_levels", results)


if __name__ == "__main__":
    main()
