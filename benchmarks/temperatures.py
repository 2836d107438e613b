"""Which sampling temperature pays for the reference model? Read from a trace pool drawn at several.

For the pool folder (default benchmarks/pools/qwen-gsm8k-train-temperatures: GSM8K train
questions, greedy and 8 samples at each of 0.3, 0.5, 0.7 and 1.0, 384 tokens a sample), per
temperature: the share of samples right and cut by the cap, their mean tokens, majority@k over the
first k samples (k = 2, 4, 8, ties by the free logprob score) and pass@8, with 95% bootstrap
intervals over questions, beside greedy. Only questions with every temperature drawn count.

Writes benchmarks/results/temperatures.json and the doc block ``temperatures`` in
docs/benchmarks.md:

    .venv/bin/python -m benchmarks.temperatures [--pool benchmarks/pools/NAME]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks._common import REPO, mean_interval, write_results
from benchmarks.docs import refresh
from ttc_agent.evaluation.pool_replay import replay_pool
from ttc_agent.evaluation.pools import read_pool, read_pool_meta
from ttc_agent.probes.latency import LatencyModel

#: Seconds do not matter here: replays are read for their votes only.
UNTIMED = LatencyModel((1.0, 0.0, 0.0, 0.0, 0.0))
DEFAULT = REPO / "benchmarks" / "pools" / "qwen-gsm8k-train-temperatures"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=Path, default=DEFAULT, help="a pool folder drawn at several temperatures")
    args = parser.parse_args()
    meta, records = read_pool_meta(args.pool), read_pool(args.pool)
    temperatures = [0.0, *sorted(float(t) for t in meta["pool"]["samples"])]
    by: dict[str, dict[float, dict]] = {}
    for r in records:
        by.setdefault(r["problem_id"], {})[float(r["temperature"])] = r
    ids = sorted(pid for pid, t in by.items() if all(x in t for x in temperatures))
    out: dict = {
        "pool": str(args.pool.relative_to(REPO)),
        "questions": len(ids),
        "max_tokens": meta["pool"]["max_tokens"],
    }
    pooled = [r for r in records if r["problem_id"] in set(ids)]
    greedy = np.array([by[p][0.0]["samples"][0]["correct"] for p in ids], dtype=float)
    out["greedy"] = {"accuracy": float(greedy.mean()), "accuracy_ci": mean_interval(greedy),
                     "cut": float(np.mean([by[p][0.0]["samples"][0]["finish"] == "length" for p in ids])),
                     "tokens": float(np.mean([by[p][0.0]["samples"][0]["tokens"] for p in ids]))}  # fmt: skip
    out["temperatures"] = {}
    for t in temperatures[1:]:
        row: dict = {}
        samples = [by[p][t]["samples"] for p in ids]
        per_sample = np.array([np.mean([s["correct"] for s in ss]) for ss in samples])
        row["per_sample_right"], row["per_sample_right_ci"] = float(per_sample.mean()), mean_interval(per_sample)
        row["cut"] = float(np.mean([s["finish"] == "length" for ss in samples for s in ss]))
        row["tokens"] = float(np.mean([s["tokens"] for ss in samples for s in ss]))
        for k in (2, 4, 8):  # majority over the first k samples, as the strategy would vote
            spec = f"best_of_n({k}, select=majority, temperature={t:g})"
            runs = replay_pool(pooled, [spec], UNTIMED, max_tokens=out["max_tokens"])
            right = np.array([r["correct"] for r in sorted(runs, key=lambda r: r["problem_id"])], dtype=float)
            row[f"majority@{k}"], row[f"majority@{k}_ci"] = float(right.mean()), mean_interval(right)
        passed = np.array([any(s["correct"] for s in ss[:8]) for ss in samples], dtype=float)
        row["pass@8"], row["pass@8_ci"] = float(passed.mean()), mean_interval(passed)
        out["temperatures"][f"{t:g}"] = row
    g = out["greedy"]
    print(f"{out['questions']} questions; greedy {g['accuracy']:.3f} {g['accuracy_ci']}, cut {g['cut']:.0%}")
    for t, row in out["temperatures"].items():
        print(f"  T={t}: per-sample {row['per_sample_right']:.3f}, cut {row['cut']:.0%}, tokens {row['tokens']:.0f}, "
              f"majority@2/4/8 {row['majority@2']:.3f}/{row['majority@4']:.3f}/{row['majority@8']:.3f}, pass@8 {row['pass@8']:.3f}")  # fmt: skip
    write_results("temperatures", out)
    refresh("temperatures")


def doc_blocks(out: dict) -> dict[str, str]:
    """The docs' block of saved temperature results."""
    g = out["greedy"]
    lines = [f"`python -m benchmarks.temperatures` on `{out['pool']}`: {out['questions']} GSM8K train questions with "
             f"every temperature drawn, {out['max_tokens']} tokens a sample. Greedy: {g['accuracy']:.3f} "
             f"[{g['accuracy_ci'][0]:.2f}, {g['accuracy_ci'][1]:.2f}], {g['cut']:.0%} cut by the cap, {g['tokens']:.0f} tokens.", "",
             "| temperature | samples right [95%] | cut by the cap | tokens a sample | majority@2 | majority@4 | majority@8 [95%] | pass@8 |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for t, r in out["temperatures"].items():
        lines.append(f"| {t} | {r['per_sample_right']:.3f} [{r['per_sample_right_ci'][0]:.2f}, {r['per_sample_right_ci'][1]:.2f}] | "
                     f"{r['cut']:.0%} | {r['tokens']:.0f} | {r['majority@2']:.3f} | {r['majority@4']:.3f} | {r['majority@8']:.3f} "
                     f"[{r['majority@8_ci'][0]:.2f}, {r['majority@8_ci'][1]:.2f}] | {r['pass@8']:.3f} |")  # fmt: skip
    return {"temperatures": "\n".join(lines)}


if __name__ == "__main__":
    main()
