"""The policy fitted on trace pools, measured on held-out pools: does choosing per question pay?

Per task, two pools of the reference model (greedy, 16 samples at temperature 0.5 and 4 at 0.7,
512 tokens): one for fitting, one never fitted on (GSM8K: its train and test splits). Every
strategy of `benchmarks/menus/qwen-pools.yaml` is replayed from them
(`ttc_agent.evaluation.pool_replay`, seconds from the latency model profiled on the backend,
`pools/latency-qwen2.5-coder-0.5b.json`, which `benchmarks/replay_check.py` checks against real
runs; without one, fitted on the train pool's own batched calls). The probe bundle (text
statistics, as the reference model's) is fitted on the whole train pool's replays and each
two-stage strategy's stage-2 model on its questions (what ``ttc-agent replay`` + ``ttc-agent
train --pool`` do); then on the held-out pool:

- every static strategy (a two-stage strategy under its default agreement rule);
- the utility policy over a sweep of token prices and of second prices, deciding each question
  as the engine does: a prompt flagged out of distribution takes each strategy's training
  accuracy and the two-stage default rule; elsewhere a chosen two-stage strategy's second
  stage is decided by its stage-2 model at the same prices (`replay(..., priced=...)`);
- the hindsight oracle at each price; against the most accurate static strategy: the policy's
  accuracy at its tokens and seconds, its cost at its accuracy, and the share of the gap to the
  oracle closed (95% bootstrap intervals over questions);
- the stage-2 models' held-out AUROC at telling whether the first stage's vote is right
  (95% bootstrap interval, where at least 5 first stages are right and 5 wrong).

Arithmetic has one pool, 30% of its questions held out by a hash; each task's bundle is also
asked the other task's held-out questions (out of distribution).

Only questions whose pool is whole are used (pools are drawn while this runs). Writes
benchmarks/results/pool_policy.json, docs/img/pool-policy-<task>.png/svg and the doc block
``pool-policy`` in docs/benchmarks.md; about a minute:

    .venv/bin/python -m benchmarks.pool_policy
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from benchmarks._common import REPO, write_results
from benchmarks.docs import figure_list, refresh
from ttc_agent.backends.fingerprint import same_model
from ttc_agent.evaluation.pool_replay import fit_stage2, pool_latency, replay_pool, stage2_rows
from ttc_agent.evaluation.pools import PoolSpec, complete_questions, read_pool, read_pool_meta
from ttc_agent.evaluation.replay import Outcomes, replay
from ttc_agent.evaluation.verdict import MIN_EACH_OUTCOME
from ttc_agent.plotting import plot_replay
from ttc_agent.policy import CallLimits
from ttc_agent.probes import FeatureSet, ProbeBundle
from ttc_agent.probes.latency import LatencyModel
from ttc_agent.probes.predictions import Predictions
from ttc_agent.probes.table import TraceTable, split_ids
from ttc_agent.strategies import TwoStage
from ttc_agent.strategies.menu import Menu

MENU = REPO / "benchmarks" / "menus" / "qwen-pools.yaml"
POOLS = REPO / "benchmarks" / "pools"
#: The backend's latency model (`ttc-agent profile`), used where it was profiled on the pools' model.
PROFILE = POOLS / "latency-qwen2.5-coder-0.5b.json"
IMG = REPO / "docs" / "img"
#: Per task, the pool fitted on and the pool held out.
TASKS = {"gsm8k": ("qwen-gsm8k-train", "qwen-gsm8k-test")}
#: Per task, one pool and the share of its questions held out.
SPLIT_TASKS = {"arithmetic": ("qwen-arithmetic", 0.3)}
FEATURES = "text_stats"
#: The issue's bars: the best static strategy's accuracy at these shares of its cost.
TOKEN_BAR, SECONDS_BAR, GAP_BAR = 0.5, 0.6, 0.5
#: Out of distribution: the policy within this much of the best static strategy's accuracy.
OOD_POINTS = 0.02
#: What the docs say where an AUROC has no interval.
TOO_FEW = f"(no interval: fewer than {MIN_EACH_OUTCOME} held-out questions right or wrong)"

Record = dict[str, Any]


def whole_pool(folder: Path) -> tuple[list[Record], dict[str, Any]]:
    """The records of a pool's whole questions, and its meta."""
    meta = read_pool_meta(folder)
    return complete_questions(read_pool(folder), PoolSpec.from_dict(meta["pool"])), meta


def latency_for(train: list[Record], backend: dict[str, Any]) -> tuple[LatencyModel, str]:
    """The profiled latency model where it was profiled on the pool's model, else one fitted on
    the train pool's calls; and which."""
    if PROFILE.is_file():
        profiled = LatencyModel.load(PROFILE)
        if same_model(profiled.backend, backend):
            return profiled, f"the latency model profiled on the backend (`{PROFILE.relative_to(REPO)}`)"
    return pool_latency(train, backend), "a latency model fitted on the train pool's calls"


def fit_bundle(menu: Menu, train: list[Record], latency: LatencyModel, backend: dict[str, Any]) -> ProbeBundle:
    """Probes fitted on every train question's replays, stage-2 models on its pools."""
    features = FeatureSet.from_names(FEATURES)
    bundle = ProbeBundle(menu, features, latency=latency, fingerprint=backend)
    bundle.fit(replay_pool(train, menu.specs, latency, **menu.defaults))
    fit_stage2(bundle, train, latency)
    return bundle


def two_stage_specs(menu: Menu) -> list[str]:
    return [s for s in menu.specs if isinstance(menu.strategy(s), TwoStage)]


def decisions(bundle: ProbeBundle, table: TraceTable) -> tuple[Predictions, np.ndarray]:
    """The bundle's predictions on the held-out questions as the engine uses them (a novel
    prompt's accuracy its training average), and which prompts are novel."""
    X = bundle.features.transform(table.prompts)
    pred = bundle.predict_features(X, table.prompt_tokens)
    novel = bundle.novelty_.is_novel(X) if bundle.novelty_ is not None else np.zeros(len(table.ids), bool)
    return bundle.untrusted(pred, novel), novel


def priced_outcomes(
    bundle: ProbeBundle,
    test: list[Record],
    static: list[Record],
    table: TraceTable,
    novel: np.ndarray,
    latency: LatencyModel,
) -> Callable[[CallLimits], Outcomes]:
    """The held-out outcomes at a price: each two-stage strategy continued by its stage-2 model
    at that price (its default rule on novel prompts), every other strategy as replayed."""
    menu, specs = bundle.menu, bundle.specs
    staged = two_stage_specs(menu)
    flagged = {pid for pid, n in zip(table.ids, novel, strict=True) if n}
    trusted = [r for r in test if r["problem_id"] not in flagged]
    fallback = [r for r in static if r["strategy"] in staged and r["problem_id"] in flagged]
    kept = [r for r in static if r["strategy"] not in staged]

    def at(limits: CallLimits) -> Outcomes:
        runs = list(kept) + fallback
        for spec in staged:
            continuation = bundle.continuation(spec, limits.lambda_tokens, limits.lambda_seconds)
            runs += replay_pool(trusted, [spec], latency, continuation, **menu.defaults) if trusted else []
        priced = TraceTable.from_records(runs, specs)
        return Outcomes.from_table(priced.subset([priced.ids.index(pid) for pid in table.ids]), specs)

    return at


def stage2_auroc(bundle: ProbeBundle, test: list[Record], latency: LatencyModel) -> dict[str, dict[str, Any]]:
    """Per two-stage strategy: the stage-2 model's held-out AUROC at telling whether the first
    stage's vote is already right, with a 95% bootstrap interval over questions."""
    out = {}
    for spec in two_stage_specs(bundle.menu):
        strategy = bundle.menu.strategy(spec)
        assert isinstance(strategy, TwoStage)
        X, y, _ = stage2_rows(test, strategy, latency)
        step = len(strategy.options)
        scores = bundle.stage2_[spec].predict_proba(X[::step])[:, 1]
        labels = y[::step]
        out[spec] = {"questions": len(labels), "stop_right": float(labels.mean()), **auroc_interval(labels, scores)}
    return out


def auroc_interval(labels: np.ndarray, scores: np.ndarray, draws: int = 2000, seed: int = 0) -> dict[str, Any]:
    """AUROC and its 95% percentile bootstrap interval over questions: the AUROC ``None`` when
    one class is missing, the interval ``None`` with fewer than `MIN_EACH_OUTCOME` of either
    (resampling a handful of questions collapses it at 0 or 1, as `ttc-agent train`'s verdict
    says)."""
    if len(set(labels.tolist())) < 2:
        return {"auroc": None, "auroc_ci": None}
    if min(int(labels.sum()), int(len(labels) - labels.sum())) < MIN_EACH_OUTCOME:
        return {"auroc": float(roc_auc_score(labels, scores)), "auroc_ci": None}
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        rows = rng.integers(0, len(labels), len(labels))
        if len(set(labels[rows].tolist())) == 2:
            values.append(roc_auc_score(labels[rows], scores[rows]))
    return {
        "auroc": float(roc_auc_score(labels, scores)),
        "auroc_ci": [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))],
    }


def targets(result: Mapping[str, Any]) -> dict[str, Any]:
    """The issue's bars on a held-out replay: the best static strategy's accuracy at <= 50% of its
    tokens and <= 60% of its seconds, and >= 50% of the gap to the oracle closed at its tokens
    with the interval's lower bound above 0."""
    tok, sec = result["tokens"], result["seconds"]
    gap, gap_ci = tok["gap_closed"], tok["ci95"]["gap_closed"]
    return {
        "token_ratio": tok["cost_ratio_at_static_accuracy"],
        "seconds_ratio": sec["cost_ratio_at_static_accuracy"],
        "gap_closed": gap,
        "gap_closed_ci": gap_ci,
        "tokens_met": tok["cost_ratio_at_static_accuracy"] is not None
        and tok["cost_ratio_at_static_accuracy"] <= TOKEN_BAR,
        "seconds_met": sec["cost_ratio_at_static_accuracy"] is not None
        and sec["cost_ratio_at_static_accuracy"] <= SECONDS_BAR,
        "gap_met": gap is not None and gap >= GAP_BAR and gap_ci is not None and gap_ci[0] > 0,
    }


@dataclass(frozen=True)
class Split:
    """A task's pools: the questions fitted on and those held out, and where they come from."""

    train: list[Record]
    test: list[Record]
    backend: dict[str, Any]
    source: str


def splits() -> dict[str, Split]:
    """Every task whose pools exist: GSM8K's train and test pools; arithmetic's one pool split by
    a hash of the question (`split_ids`, 30% held out)."""
    out = {}
    for task, (train_name, test_name) in TASKS.items():
        if (POOLS / train_name).is_dir() and (POOLS / test_name).is_dir():
            train, meta = whole_pool(POOLS / train_name)
            test, _ = whole_pool(POOLS / test_name)
            out[task] = Split(train, test, meta["backend"], f"`{train_name}` / `{test_name}`")
    for task, (name, fraction) in SPLIT_TASKS.items():
        if (POOLS / name).is_dir():
            records, meta = whole_pool(POOLS / name)
            ids = sorted({r["problem_id"] for r in records})
            train_idx, _ = split_ids(ids, fraction)
            fitted = {ids[i] for i in train_idx}
            out[task] = Split([r for r in records if r["problem_id"] in fitted],
                              [r for r in records if r["problem_id"] not in fitted], meta["backend"],
                              f"`{name}`, {fraction:.0%} held out by a hash of the question")  # fmt: skip
    return out


def evaluate(bundle: ProbeBundle, test: list[Record], latency: LatencyModel, bootstrap: int) -> dict[str, Any]:
    """The bundle's policy replayed on held-out pool records, with its stage-2 models' AUROC."""
    static = replay_pool(test, bundle.specs, latency, **bundle.menu.defaults)
    table = TraceTable.from_records(static, bundle.specs)
    pred, novel = decisions(bundle, table)
    result = replay(
        table, pred, bootstrap=bootstrap, priced=priced_outcomes(bundle, test, static, table, novel, latency)
    )
    result.update(flagged=float(novel.mean()), stage2=stage2_auroc(bundle, test, latency))
    return result


def within_reach(result: Mapping[str, Any]) -> dict[str, Any]:
    """Out of distribution, the bar: the policy within 2 points of the best static strategy's
    accuracy at no more of its tokens."""
    best = result["static"][result["best_static"]]
    reached = result["tokens"]["adaptive_accuracy_at_static_cost"]
    return {
        "best_static_accuracy": best["accuracy"],
        "policy_accuracy_at_its_tokens": reached,
        "met": reached is not None and reached >= best["accuracy"] - OOD_POINTS,
    }


def run(bootstrap: int) -> dict[str, Any]:
    """Each task's bundle on its own held-out questions, then on every other task's."""
    menu = Menu.load(MENU)
    tasks = splits()
    results: dict[str, Any] = {"in_distribution": {}, "out_of_distribution": {}}
    bundles = {}
    for task, split in tasks.items():
        latency, latency_source = latency_for(split.train, split.backend)
        bundle = bundles[task] = fit_bundle(menu, split.train, latency, split.backend)
        r = evaluate(bundle, split.test, latency, bootstrap)
        r.update(pools=split.source, train_questions=len(bundle.train_ids_), latency=list(latency.weights),
                 latency_source=latency_source, features=FEATURES, menu=list(menu.specs))  # fmt: skip
        r["targets"] = targets(r)
        r["plots"] = [str(Path(p).relative_to(REPO)) for p in plot_replay(r, str(IMG / f"pool-policy-{task}"), task)]
        results["in_distribution"][task] = r
    for fitted, bundle in bundles.items():
        for asked, split in tasks.items():
            if asked != fitted:
                r = evaluate(bundle, split.test, bundle.latency or pool_latency(split.train, split.backend), bootstrap)
                r["targets"] = within_reach(r)
                results["out_of_distribution"][f"{fitted} bundle on {asked}"] = r
    return results


def static_table(r: Mapping[str, Any]) -> list[str]:
    best = r["best_static"]
    lines = ["| strategy | accuracy | tokens | seconds |", "|---|---|---|---|"]
    lines += [
        f"| {'**' + s + '**' if s == best else s} | {v['accuracy']:.3f} | {v['tokens']:.0f} | {v['seconds']:.1f} |"
        for s, v in r["static"].items()
    ]
    return [*lines, ""]


def matched_lines(r: Mapping[str, Any]) -> list[str]:
    best, lines = r["best_static"], []
    for cost, bar in (("tokens", TOKEN_BAR), ("seconds", SECONDS_BAR)):
        c = r[cost]
        ratio = c["cost_ratio_at_static_accuracy"]
        lines.append(
            f"- at {best}'s {cost} ({c['best_static'][cost]:.1f}): the policy {_num(c['adaptive_accuracy_at_static_cost'])} "
            f"{_ci(c['ci95']['adaptive_accuracy_at_static_cost'])}, the oracle {_num(c['oracle_accuracy_at_static_cost'])}; "
            f"gap closed {_num(c['gap_closed'])} {_ci(c['ci95']['gap_closed'])}; the policy reaches its accuracy at "
            f"{'no price' if ratio is None else f'{ratio:.2f}x'} its {cost} (bar: {bar:.0%})."
        )
    return lines


def doc(results: Mapping[str, Any]) -> str:
    lines = [
        "The utility policy fitted on one pool and replayed on questions it never saw (probes on text statistics, "
        "stage-2 models fitted on the train questions; a chosen two-stage strategy's second stage decided at the "
        "same prices; a prompt flagged out of distribution decided on training averages and the default rule): "
        "`python -m benchmarks.pool_policy`.",
        "",
    ]
    for task, r in results["in_distribution"].items():
        lines += [
            f"**{task}** ({r['pools']}): fitted on {r['train_questions']} questions, replayed on {r['queries']} held "
            f"out ({r['flagged']:.0%} of them flagged out of distribution); seconds from {r['latency_source']}.",
            "",
            *static_table(r),
            *matched_lines(r),
        ]
        for spec, s in r["stage2"].items():
            lines.append(
                f"- stage-2 model of {spec}: held-out AUROC {_num(s['auroc'])} {_ci(s['auroc_ci']) or TOO_FEW} on "
                f"{s['questions']} questions (first stage right on {s['stop_right']:.0%}; bar: 0.85)."
            )
        t = r["targets"]
        met = [
            name for name, key in (("tokens", "tokens_met"), ("seconds", "seconds_met"), ("gap", "gap_met")) if t[key]
        ]
        lines += [f"- bars met: {', '.join(met) or 'none'}.", ""]
    if results["out_of_distribution"]:
        lines += [
            "Out of distribution: each task's bundle on the other task's held-out questions (bar: the policy within "
            f"{OOD_POINTS * 100:.0f} points of the best static strategy's accuracy at no more of its tokens).",
            "",
            "| bundle on | questions | flagged | best static | its accuracy, tokens | the policy at its tokens | met |",
            "|---|---|---|---|---|---|---|",
        ]
        for key, r in results["out_of_distribution"].items():
            best, t = r["static"][r["best_static"]], r["targets"]
            lines.append(
                f"| {key} | {r['queries']} | {r['flagged']:.0%} | {r['best_static']} | {best['accuracy']:.3f}, "
                f"{best['tokens']:.0f} | {_num(t['policy_accuracy_at_its_tokens'])} "
                f"{_ci(r['tokens']['ci95']['adaptive_accuracy_at_static_cost'])} | {'yes' if t['met'] else 'no'} |"
            )
        lines.append("")
    return "\n".join(lines)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _ci(c: Sequence[float] | None) -> str:
    return "" if c is None else f"[{c[0]:.3f}, {c[1]:.3f}]"


def doc_blocks(results: dict[str, Any]) -> dict[str, str]:
    """The docs' blocks of saved pool-policy results: the tables and the figure list."""
    stems = [f"pool-policy-{task}" for task in results["in_distribution"]]
    return {
        "pool-policy": doc(results),
        "figures-pool-policy": figure_list(
            "Every figure of this section, redrawn by `python -m benchmarks.pool_policy`:", stems
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", type=int, default=500, help="bootstrap resamples for the intervals")
    args = parser.parse_args()
    results = run(args.bootstrap)
    for task, r in results["in_distribution"].items():
        print(f"{task}: fitted on {r['train_questions']}, replayed on {r['queries']} held-out questions")
        for spec, v in r["static"].items():
            print(f"  {spec:66s} acc {v['accuracy']:.3f} tokens {v['tokens']:7.0f} seconds {v['seconds']:6.1f}")
        print(f"  targets: {r['targets']}")
        for spec, s in r["stage2"].items():
            print(f"  stage-2 {spec}: AUROC {_num(s['auroc'])} {_ci(s['auroc_ci'])}")
    for key, r in results["out_of_distribution"].items():
        print(f"{key}: {r['queries']} questions, flagged {r['flagged']:.0%}, {r['targets']}")
    write_results("pool_policy", results)
    refresh("pool_policy")
    print("results: benchmarks/results/pool_policy.json")


if __name__ == "__main__":
    main()
