"""Out of distribution: does the decision notice prompts unlike its training prompts, and does the
fallback keep it from being confidently wrong?

Two bundles of the reference model, each fitted here on one task's traces (text statistics, the
training split of `ttc-agent train`): one on the arithmetic traces (the bundle shipped before the
pools, on its menu) and one on the GSM8K traces. Each is asked about its own held-out questions and about every question of the
other task. Reported per direction: the share of prompts flagged out of distribution
(`FeatureNovelty`, threshold at the 99th percentile of leave-one-out training scores), and the
accuracy and tokens of the bundle's policy at lambda 0 with and without the fallback, against
every static strategy on the traces of the questions asked (95% bootstrap intervals).

Writes benchmarks/results/ood.json and the doc block ``ood`` in docs/benchmarks.md:

    .venv/bin/python -m benchmarks.ood
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmarks._common import REPO, mean_interval, write_results
from benchmarks.docs import refresh
from ttc_agent.evaluation.collect import read_meta, read_traces, write_trace_folder
from ttc_agent.evaluation.pool_replay import replay_pool
from ttc_agent.evaluation.pools import pool_from_traces
from ttc_agent.evaluation.probe_training import train_from_traces
from ttc_agent.policy import CallLimits, UtilityPolicy
from ttc_agent.probes import ProbeBundle
from ttc_agent.probes.latency import LatencyModel
from ttc_agent.probes.table import TraceTable

SAFE_TWO_STAGE = "two_stage(k=4, more=12)"
TRACES = {"arithmetic": REPO / "benchmarks/traces/qwen-arithmetic", "gsm8k": REPO / "benchmarks/traces/qwen-gsm8k"}


def evaluate(bundle: ProbeBundle, table: TraceTable, ask: list[int]) -> dict:
    """The bundle's decisions on the questions ``ask`` of ``table``: flagged share, the policy
    with and without the fallback, and every static strategy of the bundle's menu."""
    sub = table.subset(ask)
    X = bundle.features.transform(sub.prompts)
    pred = bundle.predict_features(X, sub.prompt_tokens)
    novel = bundle.novelty_.is_novel(X) if bundle.novelty_ is not None else np.zeros(len(ask), bool)
    specs = list(bundle.specs)
    correct = np.column_stack([sub.mean(s, "correct") for s in specs])
    tokens = np.column_stack([sub.mean(s, "total_tokens") for s in specs])
    trusting = np.array([d.index for d in UtilityPolicy().decide(pred, CallLimits())])
    falling_back = np.array([d.index for d in UtilityPolicy().decide(bundle.untrusted(pred, novel), CallLimits())])
    rows = np.arange(len(ask))

    def summary(pick: np.ndarray) -> dict:
        c = correct[rows, pick]
        return {
            "accuracy": float(c.mean()),
            "accuracy_ci": mean_interval(c),
            "tokens": float(tokens[rows, pick].mean()),
        }

    static = {s: summary(np.full(len(ask), j)) for j, s in enumerate(specs)}
    best = max(static, key=lambda s: static[s]["accuracy"])
    with_fallback = summary(falling_back)
    return {
        "ids": list(sub.ids),
        "questions": len(ask),
        "flagged": float(novel.mean()),
        "policy_trusting_probes": {**summary(trusting), "choices": _counts(specs, trusting)},
        "policy_with_fallback": {**with_fallback, "choices": _counts(specs, falling_back)},
        "static": static,
        "best_static": best,
        "within_2_points_at_no_more_tokens": bool(
            with_fallback["accuracy"] >= static[best]["accuracy"] - 0.02
            and with_fallback["tokens"] <= static[best]["tokens"]
        ),
    }


def _counts(specs: list[str], picks: np.ndarray) -> dict[str, int]:
    return {specs[j]: int((picks == j).sum()) for j in sorted(set(picks.tolist()))}


def fitted_on(task: str, specs: tuple[str, ...] | None = None) -> ProbeBundle:
    """A bundle fitted (as `ttc-agent train` fits, text statistics, a quarter held out) on the
    ``task``'s traces, of the strategies ``specs`` only (those both tasks traced, so each bundle
    can be replayed on the other task's traces) or of the whole menu."""
    if specs is None:
        return train_from_traces(TRACES[task], "text_stats", None, 0.25).bundle
    meta = read_meta(TRACES[task])
    records = [r for r in read_traces(TRACES[task]) if r["strategy"] in specs]
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_trace_folder(
            Path(tmp) / task, {**meta, "menu": {**meta["menu"], "strategies": list(specs)}}, records
        )
        return train_from_traces(folder, "text_stats", None, 0.25).bundle


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    arithmetic = fitted_on("arithmetic")
    bundles = {"arithmetic": arithmetic, "gsm8k": fitted_on("gsm8k", arithmetic.specs)}
    results = {}
    for fitted, bundle in bundles.items():
        for asked, folder in TRACES.items():
            table = TraceTable.from_records(read_traces(folder), bundle.specs)
            trained = set(bundle.train_ids_)
            ask = [i for i, pid in enumerate(table.ids) if pid not in trained]
            key = f"{fitted} bundle on {asked}" + (" (held out)" if fitted == asked else "")
            results[key] = evaluate(bundle, table, ask)
            r = results[key]
            print(f"{key}: {r['questions']} questions, flagged {r['flagged']:.0%}; trusting probes "
                  f"{r['policy_trusting_probes']['accuracy']:.3f} ({r['policy_trusting_probes']['choices']}), with fallback "
                  f"{r['policy_with_fallback']['accuracy']:.3f} at {r['policy_with_fallback']['tokens']:.0f} tokens; best static "
                  f"{r['best_static']} {r['static'][r['best_static']]['accuracy']:.3f} at {r['static'][r['best_static']]['tokens']:.0f}")  # fmt: skip
    # The safe two-stage default (its agreement rule reads the answers, not the prompt) on each
    # task, replayed from the traced best-of-16 samples: what a menu with it would fall back to.
    for asked, folder in TRACES.items():
        pool = pool_from_traces(read_traces(folder), "best_of_n(16, select=majority)")
        cap = 384 if asked == "gsm8k" else 96
        for r in pool:
            r["max_tokens"] = cap
        runs = replay_pool(pool, [SAFE_TWO_STAGE], LatencyModel((1.0, 0, 0, 0, 0)), max_tokens=cap)
        c = np.array([r["correct"] for r in runs], dtype=float)
        for key, r in results.items():
            if key.endswith(f"on {asked}") or key.endswith(f"on {asked} (held out)"):
                asked_ids = set(r["ids"])
                mine = [x for x in runs if x["problem_id"] in asked_ids]
                cc = np.array([x["correct"] for x in mine], dtype=float)
                r["two_stage_default"] = {"accuracy": float(cc.mean()), "accuracy_ci": mean_interval(cc),
                                          "tokens": float(np.mean([x["total_tokens"] for x in mine]))}  # fmt: skip
        print(f"{SAFE_TWO_STAGE} (agreement rule) on {asked}: {c.mean():.3f}")
    for r in results.values():
        r.pop("ids")
    write_results("ood", {"results": results})
    refresh("ood")


def doc(results: dict) -> str:
    lines = [
        "`python -m benchmarks.ood`: flagged share and the policy at lambda 0, trusting its probes and with the fallback "
        "for flagged prompts (each strategy's accuracy taken as its training average), against the best static strategy on the questions asked.",
        "",
        "| bundle, questions | n | flagged | trusting the probes | with the fallback | two_stage(k=4, more=12), agreement rule | best static |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, r in results.items():
        t, f, b = r["policy_trusting_probes"], r["policy_with_fallback"], r["static"][r["best_static"]]
        ts = r["two_stage_default"]
        lines.append(
            f"| {key} | {r['questions']} | {r['flagged']:.0%} | {t['accuracy']:.3f} [{t['accuracy_ci'][0]:.2f}, {t['accuracy_ci'][1]:.2f}], "
            f"{t['tokens']:.0f} tok | {f['accuracy']:.3f} [{f['accuracy_ci'][0]:.2f}, {f['accuracy_ci'][1]:.2f}], {f['tokens']:.0f} tok "
            f"| {ts['accuracy']:.3f} [{ts['accuracy_ci'][0]:.2f}, {ts['accuracy_ci'][1]:.2f}], {ts['tokens']:.0f} tok | {r['best_static']} {b['accuracy']:.3f}, {b['tokens']:.0f} tok |"
        )  # fmt: skip
    return "\n".join(lines)


def doc_blocks(results: dict) -> dict[str, str]:
    """The docs' block of saved out-of-distribution results."""
    return {"ood": doc(results["results"])}


if __name__ == "__main__":
    main()
