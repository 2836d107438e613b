"""Replay against reality: do strategies replayed from a trace pool cost and score what they do
when they run?

The same questions are pooled (`ttc-agent pool`: greedy, 16 samples at 0.5 and 4 at 0.7) and run
for real, every strategy of `benchmarks/menus/qwen-pools.yaml` once per question (`ttc-agent
collect`), on one backend with nothing else running. The pool is replayed with seconds from a
latency model profiled on that backend (`ttc-agent profile`), never fitted on the real runs.
Per strategy: accuracy real and replayed (95% bootstrap intervals, and of their difference:
different seeds draw different samples, so only the means can agree), and the replayed mean
tokens and seconds as a share of the real ones, each with a 95% bootstrap interval over questions
(the replayed samples are other draws than the real ones: their lengths differ by chance too).
The bars: the difference's interval holds 0, tokens within 5%, seconds within 15%.

Writes benchmarks/results/replay_check.json and the doc block ``replay-check`` in
docs/benchmarks.md; the collection commands are in benchmarks/README.md:

    .venv/bin/python -m benchmarks.replay_check
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from benchmarks._common import REPO, mean_interval, write_results
from benchmarks.docs import refresh
from ttc_agent.evaluation.collect import read_traces
from ttc_agent.evaluation.pool_replay import replay_pool
from ttc_agent.evaluation.pools import read_pool
from ttc_agent.probes.latency import LatencyModel
from ttc_agent.strategies.menu import Menu

MENU = REPO / "benchmarks" / "menus" / "qwen-pools.yaml"
POOL = REPO / "benchmarks" / "pools" / "qwen-arithmetic"
REAL = REPO / "benchmarks" / "traces" / "qwen-arithmetic-real"
LATENCY = REPO / "benchmarks" / "pools" / "latency-qwen2.5-coder-0.5b.json"
TOKENS_BAR, SECONDS_BAR = 0.05, 0.15

Record = dict[str, Any]


def ratio_interval(a: Sequence[float], b: Sequence[float], draws: int = 2000, seed: int = 0) -> list[float]:
    """95% percentile bootstrap interval of ``mean(a) / mean(b)`` over questions (paired)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    rows = np.random.default_rng(seed).integers(0, len(x), (draws, len(x)))
    ratios = x[rows].mean(axis=1) / np.maximum(y[rows].mean(axis=1), 1e-12)
    return [float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))]


def compare(real: Sequence[Record], replayed: Sequence[Record], specs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per strategy, real against replayed on the questions both hold."""
    out = {}
    for spec in specs:
        r = {x["problem_id"]: x for x in real if x["strategy"] == spec}
        p = {x["problem_id"]: x for x in replayed if x["strategy"] == spec}
        ids = sorted(set(r) & set(p))
        if not ids:
            continue
        rc = [float(r[i]["correct"]) for i in ids]
        pc = [float(p[i]["correct"]) for i in ids]
        per_question = {f: [[float(d[i][f]) for i in ids] for d in (r, p)] for f in ("total_tokens", "seconds")}
        tokens = [float(np.mean(v)) for v in per_question["total_tokens"]]
        seconds = [float(np.mean(v)) for v in per_question["seconds"]]
        diff = mean_interval(np.subtract(pc, rc))  # paired: the same questions, other draws
        out[spec] = {
            "questions": len(ids),
            "real": {"accuracy": float(np.mean(rc)), "accuracy_ci": mean_interval(rc), "tokens": tokens[0],
                     "seconds": seconds[0]},
            "replayed": {"accuracy": float(np.mean(pc)), "accuracy_ci": mean_interval(pc), "tokens": tokens[1],
                         "seconds": seconds[1]},
            "accuracy_difference_ci": diff,
            "tokens_ratio": tokens[1] / tokens[0],
            "tokens_ratio_ci": ratio_interval(*reversed(per_question["total_tokens"])),
            "seconds_ratio": seconds[1] / seconds[0],
            "seconds_ratio_ci": ratio_interval(*reversed(per_question["seconds"])),
            "accuracy_met": diff[0] <= 0 <= diff[1],
            "tokens_met": abs(tokens[1] / tokens[0] - 1) <= TOKENS_BAR,
            "seconds_met": abs(seconds[1] / seconds[0] - 1) <= SECONDS_BAR,
        }  # fmt: skip
    return out


def doc(results: Mapping[str, Any]) -> str:
    rows = results["strategies"]
    n = max((v["questions"] for v in rows.values()), default=0)
    lines = [
        f"{n} arithmetic questions (levels 1-4), pooled and run for real on in-process vLLM (float32, 2 cores, nothing "
        f"else running); the pool replayed with seconds from `ttc-agent profile`'s latency model: "
        "`python -m benchmarks.replay_check`.",
        "",
        "| strategy | accuracy real [95%] | replayed [95%] | difference [95%] | tokens real / replayed | seconds real / replayed |",
        "|---|---|---|---|---|---|",
    ]
    for spec, v in rows.items():
        r, p, d = v["real"], v["replayed"], v["accuracy_difference_ci"]
        lines.append(
            f"| {spec} | {r['accuracy']:.2f} {_ci(r['accuracy_ci'])} | {p['accuracy']:.2f} {_ci(p['accuracy_ci'])} | "
            f"{p['accuracy'] - r['accuracy']:+.2f} {_ci(d)}{'' if v['accuracy_met'] else ' (missed)'} | "
            f"{r['tokens']:.0f} / {p['tokens']:.0f} ({v['tokens_ratio']:.2f}x {_ci(v['tokens_ratio_ci'])}"
            f"{'' if v['tokens_met'] else ', missed'}) | {r['seconds']:.1f} / {p['seconds']:.1f} "
            f"({v['seconds_ratio']:.2f}x {_ci(v['seconds_ratio_ci'])}{'' if v['seconds_met'] else ', missed'}) |"
        )
    met = {k: sum(v[f"{k}_met"] for v in rows.values()) for k in ("accuracy", "tokens", "seconds")}
    lines += ["", f"Bars met (of {len(rows)} strategies): accuracy {met['accuracy']}, tokens within 5% {met['tokens']}, "
              f"seconds within 15% {met['seconds']}."]  # fmt: skip
    return "\n".join(lines)


def _ci(c: Sequence[float]) -> str:
    return f"[{c[0]:.2f}, {c[1]:.2f}]"


def doc_blocks(results: dict[str, Any]) -> dict[str, str]:
    """The docs' block of a saved replay check."""
    return {"replay-check": doc(results)}


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    menu = Menu.load(MENU)
    real = read_traces(REAL)
    asked = {r["problem_id"] for r in real}
    pool = [r for r in read_pool(POOL) if r["problem_id"] in asked]
    latency = LatencyModel.load(LATENCY)
    replayed = replay_pool(pool, menu.specs, latency, **menu.defaults)
    rows = compare(real, replayed, menu.specs)
    for spec, v in rows.items():
        print(f"{spec:66s} acc {v['real']['accuracy']:.2f}/{v['replayed']['accuracy']:.2f} "
              f"tokens {v['tokens_ratio']:.2f}x seconds {v['seconds_ratio']:.2f}x")  # fmt: skip
    write_results("replay_check", {"pool": str(POOL.relative_to(REPO)), "real": str(REAL.relative_to(REPO)),
                                   "latency": str(LATENCY.relative_to(REPO)), "strategies": rows})  # fmt: skip
    refresh("replay_check")
    print("results: benchmarks/results/replay_check.json")


if __name__ == "__main__":
    main()
