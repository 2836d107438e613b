"""The latency- and token-aware policy against every static strategy, on held-out queries.

End to end: it collects (or resumes) the arithmetic traces that benchmarks/probes.py also uses
(benchmarks/traces/arithmetic, the menu in benchmarks/menus/arithmetic.yaml, levels 1-4,
sampling strategies run ``--repeats`` times; a no-op when they are complete), the probes are
fitted on the train split (``ttc-agent train --test-fraction 0.3``) and every policy is replayed
on the held-out split without generating (`ttc_agent.evaluation.replay`): statics, the adaptive
policy over a sweep of token and second prices, and the hindsight oracle. It also sweeps the
price of a second at a fixed token price to show the choice moving between beam search and
best-of-N or greedy on the same queries. Then the same replay on every question with
cross-fitted probes (5 folds: each question predicted by probes fitted on the other folds),
for intervals that a 30% split is too small to give. Where the menu holds early-stopping
strategies (adaptive self-consistency, DeepConf, confidence-filtered voting), both replays also
compare the policy with them on the menu against the policy without them, at the best static
strategy's tokens and at its seconds (`ttc_agent.evaluation.replay.menu_ablation`).

Writes benchmarks/results/policy.json (a dataset not run is kept from the file) and docs/img/policy-<dataset>-{tokens,seconds}.png.

    .venv/bin/python -m benchmarks.policy [--datasets arithmetic]
    .venv/bin/python -m benchmarks.policy --datasets qwen-arithmetic --no-collect --features text_stats
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks._common import (  # noqa: E402
    DEFAULT_FEATURES,
    arithmetic_by_level,
    fitted_bundle,
    latency_for,
    saved_results,
    traced_model,
    write_results,
)
from benchmarks.docs import figure_list, refresh  # noqa: E402

HERE = Path(__file__).resolve().parent
IMG = HERE.parent / "docs" / "img"
console = Console()


def latency_flip(pred, specs: tuple[str, ...]) -> dict:
    """At token prices where beam search wins for some queries, how the choices move as the
    price of a second rises (same queries, same token price)."""
    from ttc_agent.policy import CallLimits, UtilityPolicy

    beams = [j for j, s in enumerate(specs) if s.startswith("beam")]
    if not beams:
        return {}
    scale_t, scale_s = float(np.median(pred.tokens)), float(np.median(pred.seconds))
    best = None
    for lt in np.geomspace(1e-3, 3, 25) / scale_t:
        counts0 = np.bincount(UtilityPolicy().choose(pred, CallLimits(lt, 0.0)), minlength=len(specs))
        share = counts0[beams].sum() / len(pred.accuracy)
        if best is None or share > best[1]:
            best = (float(lt), float(share))
    lt = best[0]
    sweep = []
    for ls in [0.0, *(np.geomspace(1e-3, 3, 12) / scale_s)]:
        chosen = UtilityPolicy().choose(pred, CallLimits(lt, float(ls)))
        sweep.append({"lambda_seconds": float(ls), **{s: int((chosen == j).sum()) for j, s in enumerate(specs)}})
    return {"lambda_tokens": lt, "sweep": sweep}


def early_stopping(specs: tuple[str, ...]) -> list[str]:
    """The menu's early-stopping and confidence-filtered strategies: adaptive
    self-consistency, DeepConf online and best-of-n with ``select=confident_majority``."""
    from ttc_agent.strategies import parse_strategy
    from ttc_agent.strategies.adaptive import AdaptiveSC
    from ttc_agent.strategies.best_of_n import BestOfN
    from ttc_agent.strategies.deepconf import DeepConf

    def stops_early(spec: str) -> bool:
        strategy = parse_strategy(spec)
        if isinstance(strategy, BestOfN):
            return strategy.select == "confident_majority"
        return isinstance(strategy, AdaptiveSC | DeepConf)

    return [s for s in specs if stops_early(s)]


def ablate(table, pred, bootstrap: int) -> dict:
    """The policy with the early-stopping strategies on the menu against without them ({} when
    the menu has none)."""
    from ttc_agent.evaluation.replay import menu_ablation

    early = early_stopping(pred.specs)
    if not early:
        return {}
    result = menu_ablation(table, pred, early, bootstrap=bootstrap)
    for cost in ("tokens", "seconds"):
        t = Table(title=f"the policy with {early} on the menu against without, at each static strategy's {cost}")
        for col in (
            "at the cost of",
            cost,
            "with",
            "without",
            "difference [95% CI]",
            "gap closed with / without",
            "chose them",
        ):
            t.add_column(col)
        for spec, r in result[cost]["by_budget"].items():
            ci = r["ci95_difference"]
            t.add_row(
                spec,
                f"{r['budget']:.1f}",
                _num(r["with"]["adaptive_accuracy_at_static_cost"]),
                _num(r["without"]["adaptive_accuracy_at_static_cost"]),
                f"{_num(r['difference'])} [{_num(ci and ci[0])}, {_num(ci and ci[1])}]",
                f"{_num(r['with']['gap_closed'])} / {_num(r['without']['gap_closed'])}",
                _num(r["share_choosing_them"]),
            )
        console.print(t)
    return result


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def report(name: str, result: dict, title: str) -> None:
    """Print a replay: the static strategies and the matched comparisons per cost."""
    t = Table(title=title)
    for col in ("strategy", "accuracy", "tokens", "seconds"):
        t.add_column(col)
    for spec, r in result["static"].items():
        t.add_row(spec, f"{r['accuracy']:.3f}", f"{r['tokens']:.0f}", f"{r['seconds']:.1f}")
    console.print(t)
    for cost in ("tokens", "seconds"):
        r = result[cost]
        console.print(
            f"[{cost}] best static {result['best_static']}: acc {r['best_static']['accuracy']:.3f} at "
            f"{r['best_static'][cost]:.1f}; adaptive at that cost {r['adaptive_accuracy_at_static_cost']}; "
            f"oracle {r['oracle_accuracy_at_static_cost']}; adaptive cost for that accuracy "
            f"{r['cost_ratio_at_static_accuracy']} of static; gap closed {r['gap_closed']} (95% CI {r['ci95']['gap_closed']})"
        )
    console.print(f"choices by level: {result['choices_by_level']}")


def run(name: str, bootstrap: int, folds: int, features: str = DEFAULT_FEATURES) -> dict:
    from ttc_agent.evaluation.collect import read_traces
    from ttc_agent.evaluation.probe_training import cross_fit
    from ttc_agent.evaluation.replay import replay
    from ttc_agent.plotting import plot_replay as plot
    from ttc_agent.probes import TraceTable

    traces = HERE / "traces" / name
    bundle = fitted_bundle(traces, features=features)
    table = TraceTable.from_records(read_traces(traces), bundle.specs)
    held = bundle.held_out(table)
    trained = bundle.train_ids_
    pred = bundle.predict(held.prompts, held.prompt_tokens)
    result = replay(held, pred, bootstrap=bootstrap)
    IMG.mkdir(parents=True, exist_ok=True)
    result["plots"] = [str(Path(p).relative_to(HERE.parent)) for p in plot(result, str(IMG / f"policy-{name}"))]
    result["train_problems"] = len(trained)
    result["features"] = features
    result.update(traced_model(traces))
    result["latency_flip"] = latency_flip(pred, bundle.specs)
    result["early_stopping"] = ablate(held, pred, bootstrap)

    report(name, result, f"{name}: {len(held.ids)} held-out problems (probes fitted on {len(trained)})")
    flip = result["latency_flip"]
    if flip:
        f = Table(
            title=f"latency flip at lambda_tokens={flip['lambda_tokens']:.2e}: choices as the price of a second rises"
        )
        f.add_column("lambda_seconds")
        for spec in bundle.specs:
            f.add_column(spec)
        for row in flip["sweep"]:
            f.add_row(f"{row['lambda_seconds']:.2e}", *(str(row[s]) for s in bundle.specs))
        console.print(f)
    if folds:
        everything, crossed = cross_fit(traces, features=features, latency=latency_for(traces), folds=folds)
        cf = replay(everything, crossed, bootstrap=bootstrap)
        cf["folds"] = folds
        cf["plots"] = [str(Path(p).relative_to(HERE.parent)) for p in plot(cf, str(IMG / f"policy-{name}-crossfit"))]
        report(name, cf, f"{name}: all {len(everything.ids)} problems, probes cross-fitted over {folds} folds")
        cf["early_stopping"] = ablate(everything, crossed, bootstrap)
        result["cross_fitted"] = cf
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--datasets", default="arithmetic", help="trace folders under benchmarks/traces, comma-separated"
    )
    parser.add_argument("--bootstrap", type=int, default=500)
    parser.add_argument(
        "--folds", type=int, default=5, help="cross-fitting folds for the all-questions replay (0: skip)"
    )
    parser.add_argument("--per-level", type=int, default=20, help="arithmetic questions per level to collect")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each sampling strategy per question")
    parser.add_argument("--no-collect", action="store_true", help="replay the traces as they are")
    parser.add_argument(
        "--features", default=DEFAULT_FEATURES, help="the probes' features (the reference model's bundle: text_stats)"
    )
    args = parser.parse_args()
    if not args.no_collect:
        from ttc_agent.backends import TransformersBackend
        from ttc_agent.evaluation.collect import collect
        from ttc_agent.strategies.menu import Menu

        menu = Menu.load(HERE / "menus" / "arithmetic.yaml")
        problems = arithmetic_by_level(args.per_level)
        collect(
            problems,
            menu,
            TransformersBackend(),
            HERE / "traces" / "arithmetic",
            repeats=args.repeats,
            dataset="arithmetic",
        )
    data = saved_results("policy").get("datasets", {})  # datasets not run are kept
    data.update(
        {name: run(name, args.bootstrap, args.folds, args.features) for name in args.datasets.split(",") if name}
    )
    path = write_results("policy", {"datasets": data})
    console.print(f"wrote {path}")
    refresh("policy")


def doc_blocks(results: dict) -> dict[str, str]:
    """The docs' figure lists of saved policy results (the reference model's ``qwen-*`` apart)."""
    names = list(results["datasets"])
    intro = (
        "Every figure of this section, redrawn by `python -m benchmarks.policy --datasets NAME --no-collect` (the "
        "`-crossfit` figures by its cross-fitting over `--folds 5`; NAME is the trace folder"
    )
    blocks = {}
    for suffix, group, where in (
        ("-qwen", [n for n in names if n.startswith("qwen-")], "):"),
        ("", [n for n in names if not n.startswith("qwen-")], "; `gsm8k`'s traces are not in the repository):"),
    ):
        stems = sorted(s for n in group for s in (f"policy-{n}", f"policy-{n}-crossfit"))
        blocks[f"figures-policy{suffix}"] = figure_list(
            intro + where, [s for s in stems if (IMG / f"{s}.png").is_file()]
        )
    return blocks


if __name__ == "__main__":
    main()
