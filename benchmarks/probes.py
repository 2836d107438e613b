"""How well the probes predict accuracy, tokens and seconds, on held-out queries.

Steps (each resumable; traces live in benchmarks/traces/):
1. profile the embedded model's latency (`LatencyModel`);
2. collect traces of the menu in benchmarks/menus/arithmetic.yaml on arithmetic (levels 1-4,
   k repeats); the GSM8K traces are the GSM8K runs of benchmarks/strategies.py (its menu, one
   run per strategy), which that script writes to benchmarks/traces/gsm8k;
3. per dataset, fit a `ProbeBundle` on a train split and report, per strategy, accuracy-probe
   AUROC, Brier score and ECE, token and latency MAPE, and the median time to featurise and
   predict the whole menu for one query (the LM forward passes of the sentence encoder and of
   `PromptHiddenState` are reported separately);
4. per dataset, with probes cross-fitted over every question: the accuracy probe's AUROC with
   each feature set of ``--compare-features`` (`auroc_by_features`), the share of runs within
   the predicted q90 tokens, and how much of greedy's completion length a k-token lookahead of
   the reply would explain (`greedy_lookahead`);
5. per dataset and strategy, the seconds and token MAPE no probe that reads only a question's
   level can beat, and how the seconds follow the longest sample of a run (`seconds_floor`).
Writes benchmarks/results/probes.json and plots into docs/img/.

    .venv/bin/python -m benchmarks.probes [--datasets arithmetic,gsm8k] [--per-level 20] [--repeats 2]
    .venv/bin/python -m benchmarks.probes --datasets qwen-arithmetic --no-collect --features text_stats

A trace folder of another model than the profiled one gets its latency regressed from the
traced seconds (`latency_for`); results for datasets not run this time are kept from the file.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from rich.console import Console

from benchmarks._common import (  # noqa: E402
    DEFAULT_FEATURES,
    arithmetic_by_level,
    latency_for,
    saved_results,
    traced_model,
    write_results,
)
from benchmarks.docs import figure_list, refresh  # noqa: E402

HERE = Path(__file__).resolve().parent
TRACES = HERE / "traces"
IMG = HERE.parent / "docs" / "img"


def timing(bundle, prompts, tokens, model: str | None) -> dict[str, float]:
    """Median milliseconds per query: the text statistics plus predicting the whole menu (the
    part the 2 ms target covers), and each encoder's forward pass on its own (the hidden state
    of ``model``, the traced one)."""
    from ttc_agent.probes import PromptHiddenState

    def median_ms(fn) -> float:
        fn(0)  # warm up
        runs = []
        for i in range(len(prompts)):
            started = time.perf_counter()
            fn(i)
            runs.append((time.perf_counter() - started) * 1000)
        return statistics.median(runs)

    from ttc_agent.probes import SentenceEmbedding

    stats = bundle.features.extractors[0]
    embedding = next((e for e in bundle.features.extractors if isinstance(e, SentenceEmbedding)), SentenceEmbedding())
    X = bundle.features.transform(prompts)
    hidden = PromptHiddenState(model)
    return {
        "text_stats_plus_predict_ms_median": median_ms(
            lambda i: (stats.transform([prompts[i]]), bundle.predict_features(X[i : i + 1], tokens[i : i + 1]))
        ),
        "sentence_embedding_forward_ms_median": median_ms(lambda i: embedding.transform([prompts[i]])),
        "hidden_state_forward_ms_median": median_ms(lambda i: hidden.transform([prompts[i]])),
    }


def cross_fitted(traces: Path, feature_sets: list[str], folds: int = 5) -> dict:
    """Per feature set, the trace table and the predictions of probes cross-fitted over
    ``folds`` folds (every question held out once)."""
    from ttc_agent.evaluation.probe_training import cross_fit

    return {fs: cross_fit(traces, features=fs, latency=latency_for(traces), folds=folds) for fs in feature_sets}


def auroc_by_features(fitted: dict) -> dict[str, dict[str, float | None]]:
    """Per feature set and strategy, the cross-fitted accuracy probe's AUROC over every run
    (``None`` where a strategy's runs are all right or all wrong)."""
    from ttc_agent.probes.metrics import auroc

    out: dict[str, dict[str, float | None]] = {}
    for fs, (table, pred) in fitted.items():
        out[fs] = {}
        for j, spec in enumerate(pred.specs):
            idx, y = table.run_rows(spec)
            out[fs][spec] = auroc(y, pred.accuracy[idx, j])
    return out


def seconds_floor(records: list[dict], specs: tuple[str, ...]) -> dict[str, dict[str, float | None]]:
    """Per strategy, what bounds any probe that reads the prompt: the seconds and token MAPE of
    the best constant per level (`mape_floor`, in-sample), and how closely the traced seconds follow
    the longest sample of a run (the decode steps of its batch) against its total completion
    tokens (Pearson r; ``None`` for runs without candidates)."""
    import numpy as np

    from ttc_agent.probes.metrics import mape_floor

    out: dict[str, dict[str, float | None]] = {}
    for spec in specs:
        runs = [r for r in records if r["strategy"] == spec and r["seconds"] > 0]
        seconds = np.array([r["seconds"] for r in runs])
        longest = np.array([max((c["tokens"] for c in r.get("candidates") or ()), default=0) for r in runs])
        total = np.array([r["completion_tokens"] for r in runs], dtype=float)
        levels = np.array([r["level"] for r in runs])
        out[spec] = {
            "seconds_mape_floor_by_level": mape_floor(seconds, levels),
            "tokens_mape_floor_by_level": mape_floor(np.array([r["total_tokens"] for r in runs], dtype=float), levels),
            "seconds_r_longest_sample": _pearson(longest, seconds) if longest.all() else None,
            "seconds_r_completion_tokens": _pearson(total, seconds),
        }
    return out


def _pearson(x, y) -> float | None:
    """Pearson's r (scipy), ``None`` where either side is constant."""
    import numpy as np
    from scipy.stats import pearsonr

    return None if np.ptp(x) == 0 or np.ptp(y) == 0 else float(pearsonr(x, y).statistic)


LOOKAHEAD = (0, 1, 2, 4, 8, 12)


def greedy_lookahead(table, X, model: str | None = None, folds: int = 5) -> dict:
    """How predictable greedy's completion length becomes when the probe also sees the first k
    tokens of the reply: cross-fitted greedy completion-token MAPE (and median APE) of the
    bundle's token regressor on the query features plus, per position, a one-hot of the first k
    tokens of each question's traced greedy reply (re-tokenised; greedy is deterministic, so
    they are what a k-token lookahead would decode). k=0 is the shipped probe; k=1 comes free
    with the prompt's forward pass (its next-token argmax); every further token is one decode
    step."""
    import numpy as np
    from sklearn.preprocessing import OneHotEncoder
    from transformers import AutoTokenizer

    from ttc_agent.backends.models import TEST_MODEL, model_dir
    from ttc_agent.probes.predictors import TokenRegressor
    from ttc_agent.probes.table import fold_of

    tokenizer = AutoTokenizer.from_pretrained(model_dir(model or TEST_MODEL))
    replies = [runs[0]["candidates"][0]["text"] for runs in table.runs["greedy"]]
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in replies]
    measured = table.mean("greedy", "completion_tokens")
    fold = np.array([fold_of(pid, folds) for pid in table.ids])
    out = {}
    for k in LOOKAHEAD:
        firsts = np.array([(row + [-1] * k)[:k] for row in ids]).reshape(len(ids), k)
        predicted = np.zeros(len(ids))
        for f in range(folds):
            train, test = fold != f, fold == f
            features, held = X[train], X[test]
            if k:
                onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(firsts[train])
                features = np.hstack([features, onehot.transform(firsts[train])])
                held = np.hstack([held, onehot.transform(firsts[test])])
            predicted[test] = TokenRegressor().fit(features, measured[train]).predict(held)
        ape = np.abs(predicted - measured) / measured
        out[str(k)] = {
            "completion_tokens_mape": float(ape.mean()),
            "completion_tokens_median_ape": float(np.median(ape)),
        }
    return out


def plots(name: str, bundle, table, X) -> list[str]:
    from ttc_agent.plotting import plot_probe_fit, short_label

    preds = bundle.predict_features(X, table.prompt_tokens)
    IMG.mkdir(parents=True, exist_ok=True)
    paths = plot_probe_fit(name, [short_label(s) for s in bundle.specs], table, preds, str(IMG / f"probes-{name}"))
    return [str(Path(p).relative_to(HERE.parent)) for p in paths]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-level", type=int, default=20, help="arithmetic questions per level (levels 1-4)")
    parser.add_argument(
        "--datasets", default="arithmetic,gsm8k", help="trace folders under benchmarks/traces, comma-separated"
    )
    parser.add_argument("--repeats", type=int, default=2, help="runs of each strategy per question")
    parser.add_argument(
        "--no-collect",
        action="store_true",
        help="use the trace folders as they are (any model's, e.g. qwen-arithmetic)",
    )
    parser.add_argument(
        "--features", default=DEFAULT_FEATURES, help="the probes' features (the reference model's bundle: text_stats)"
    )
    parser.add_argument(
        "--compare-features",
        default="text_stats;text_stats,sentence_embedding;text_stats,prompt_hidden_state",
        help="feature sets, ';'-separated, whose cross-fitted accuracy AUROC is compared (the hidden state is the traced model's)",
    )
    args = parser.parse_args()
    from ttc_agent.cli.tables import metrics_table
    from ttc_agent.evaluation.collect import collect, read_meta, read_traces, traced_model_name
    from ttc_agent.probes import FeatureSet, LatencyModel, ProbeBundle, TraceTable, profile, split_ids
    from ttc_agent.probes.evaluate import evaluate, runs_within_q90
    from ttc_agent.probes.machines import seconds_clock, seconds_on_one_machine
    from ttc_agent.strategies.menu import Menu

    console = Console()
    names = [n for n in args.datasets.split(",") if n]
    if not args.no_collect:  # the embedded model's latency profile and arithmetic traces
        from ttc_agent.backends import TransformersBackend

        backend = TransformersBackend()
        latency_path = TRACES / "latency.json"
        if not latency_path.is_file():
            TRACES.mkdir(parents=True, exist_ok=True)
            LatencyModel.fit(profile(backend, requests=32), backend=backend.fingerprint()).save(latency_path)
        if "arithmetic" in names:
            arithmetic_menu = Menu.load(HERE / "menus" / "arithmetic.yaml")
            problems = arithmetic_by_level(args.per_level)
            collect(
                problems, arithmetic_menu, backend, TRACES / "arithmetic", repeats=args.repeats, dataset="arithmetic"
            )
    results = saved_results("probes").get("datasets", {})  # datasets not run are kept
    for name in names:
        meta = read_meta(TRACES / name)
        menu = Menu.from_dict(meta["menu"])
        records = seconds_on_one_machine(read_traces(TRACES / name))  # one clock for every machine's runs
        table = TraceTable.from_records(records, menu.specs)
        model = traced_model_name(meta)  # whose hidden states the features and timings read
        features = FeatureSet.from_names(args.features, model=model)
        X = features.transform(table.prompts)
        train, test = split_ids(table.ids, 0.3)
        profiled = latency_for(TRACES / name)
        latency = LatencyModel.load(profiled) if profiled else None
        bundle = ProbeBundle(menu, features, latency=latency, fingerprint=meta["backend"]).fit_features(
            X[train], table.subset(train)
        )
        held = table.subset(test)
        metrics = evaluate(bundle, held, X[test])
        results[name] = {
            **traced_model(TRACES / name),
            "features": args.features,
            "latency": "profiled" if latency else "regressed from the traced seconds",
            "seconds_clock": seconds_clock(records),
            "menu": menu.to_dict(),
            "problems": len(table.ids),
            "train": len(train),
            "test": len(test),
            "per_strategy": metrics,
            **timing(bundle, held.prompts, held.prompt_tokens, model),
            "plots": plots(name, bundle, held, X[test]),
        }
        feature_sets = list(dict.fromkeys([args.features, *filter(None, args.compare_features.split(";"))]))
        fitted = cross_fitted(TRACES / name, feature_sets)
        results[name]["accuracy_auroc_cross_fitted"] = by_features = auroc_by_features(fitted)
        for fs, per_spec in by_features.items():
            console.print(
                f"{name}: accuracy AUROC cross-fitted with {fs}: "
                + ", ".join(f"{spec} {'-' if a is None else f'{a:.2f}'}" for spec, a in per_spec.items())
            )
        results[name]["tokens_q90_coverage_cross_fitted"] = coverage = runs_within_q90(*fitted[args.features])
        console.print(
            f"{name}: share of runs within the predicted q90 tokens (cross-fitted, every question): "
            + ", ".join(f"{spec} {c:.0%}" for spec, c in coverage.items())
        )
        results[name]["seconds_floor"] = floor = seconds_floor(records, menu.specs)
        console.print(
            f"{name}: seconds / tokens MAPE of the best constant per level (no probe reading only the level does better): "
            + ", ".join(
                f"{spec} {f['seconds_mape_floor_by_level']:.0%} / {f['tokens_mape_floor_by_level']:.0%}"
                for spec, f in floor.items()
            )
        )
        if "greedy" in menu.specs:
            results[name]["greedy_lookahead_cross_fitted"] = lookahead = greedy_lookahead(table, X, model)
            console.print(
                f"{name}: greedy completion-token MAPE (cross-fitted) with the first k reply tokens as features: "
                + ", ".join(f"k={k} {v['completion_tokens_mape']:.0%}" for k, v in lookahead.items())
            )
        t = metrics_table(
            metrics, f"{name}: held-out probes ({len(test)} of {len(table.ids)} questions, features {args.features})"
        )
        console.print(t)
        r = results[name]
        console.print(
            f"per query (median): text stats + predict the menu {r['text_stats_plus_predict_ms_median']:.2f} ms; "
            f"MiniLM forward {r['sentence_embedding_forward_ms_median']:.1f} ms; policy-model hidden state {r['hidden_state_forward_ms_median']:.1f} ms"
        )
    path = write_results("probes", {"datasets": results})
    console.print(f"wrote {path}; the plots are in {IMG}")
    refresh("probes")


def doc_blocks(results: dict) -> dict[str, str]:
    """The docs' figure lists of saved probe results (the reference model's ``qwen-*`` apart)."""
    names = list(results["datasets"])
    intro = "Every figure of this section, redrawn by `python -m benchmarks.probes --datasets NAME --no-collect`:"
    return {
        f"figures-probes{suffix}": figure_list(intro, sorted(f"probes-{n}" for n in group))
        for suffix, group in (("-qwen", [n for n in names if n.startswith("qwen-")]),
                              ("", [n for n in names if not n.startswith("qwen-")]))
    }  # fmt: skip


if __name__ == "__main__":
    main()
