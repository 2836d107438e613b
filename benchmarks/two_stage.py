"""Two-stage decisions on trace pools: does looking at the first samples pay?

On the reference model's pools (greedy, 16 samples at temperature 0.5 and 4 at 0.7, 512 tokens;
GSM8K: fitted on the train-split pool, measured on the test-split pool; arithmetic: one pool, 30%
of its questions held out by a hash, as `benchmarks/pool_policy.py` splits them), every strategy
is replayed (`ttc_agent.evaluation.pool_replay`), seconds from the latency model profiled on the
backend ("measured") and from the same model as if a round's samples ran fully in parallel
("parallel", as on a GPU with room to spare). The stage-2 model of ``two_stage(k=4, more=12)``
is fitted on the train questions and decides on the held-out ones, compared with the static
strategies and adaptive self-consistency:

- its held-out AUROC at telling whether the first stage's vote is already right;
- accuracy, tokens and seconds across token prices, against adaptive SC at equal tokens and at
  equal accuracy (95% paired bootstrap intervals over questions);
- as the price of a second increases: how often it still pays for a second round, and whether
  the two-stage strategy or one wide round of 16 samples has the higher utility.

Writes benchmarks/results/two_stage.json, docs/img/two-stage.png/svg, the README's figure
docs/img/readme-gsm8k.png/svg and the doc block ``two-stage`` in docs/benchmarks.md. Runs in
about a minute:

    .venv/bin/python -m benchmarks.two_stage
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.pipeline import Pipeline

from benchmarks._common import DOC, REPO, mean_interval, saved_results, write_results
from benchmarks.docs import figure_list, refresh
from benchmarks.pool_policy import TOO_FEW, Split, auroc_interval, latency_for, splits
from ttc_agent.evaluation.pool_replay import replay_pool, stage2_rows
from ttc_agent.plotting import plain_log_axis, pyplot, save_figure, short_label
from ttc_agent.probes.latency import LatencyModel
from ttc_agent.probes.stage2 import Stage2Policy, stage2_model
from ttc_agent.strategies import TwoStage, parse_strategy

K, MORE, TEMPERATURE, CAP = 4, 12, 0.5, 512
STATIC = ("greedy", *(f"best_of_n({n}, select=majority, temperature=0.5)" for n in (4, 8, 16)))
ADAPTIVE = "adaptive_sc(max_n=16, batch=4, threshold=0.95, temperature=0.5)"
LAMBDA_TOKENS = (0.0, 1e-5, 3e-5, 1e-4, 2e-4, 4e-4, 1e-3, 3e-3)
LAMBDA_SECONDS = (0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)


def datasets() -> dict[str, tuple[Split, LatencyModel]]:
    """Each task's pools split into fitted and held-out questions, with the backend's latency model."""
    out = {}
    for name, split in splits().items():
        latency, _ = latency_for(split.train, split.backend)
        out[name] = (split, latency)
    return out


def summary(records: list[dict]) -> dict:
    correct = np.array([r["correct"] for r in records], dtype=float)
    return {
        "accuracy": float(correct.mean()),
        "accuracy_ci": mean_interval(correct),
        "tokens": float(np.mean([r["total_tokens"] for r in records])),
        "seconds": float(np.mean([r["seconds"] for r in records])),
        "rounds": float(np.mean([r["rounds"] for r in records])),
        "second_round": float(np.mean([r.get("stop_reason") == "continued" for r in records])),
    }


def paired(a: list[dict], b: list[dict], field: str) -> dict:
    """Mean of ``a - b`` over the same questions, with a 95% bootstrap interval."""
    by_b = {r["problem_id"]: r for r in b}
    diff = np.array([float(r[field]) - float(by_b[r["problem_id"]][field]) for r in a])
    return {"mean": float(diff.mean()), "ci": mean_interval(diff)}


def parallel(latency: LatencyModel) -> LatencyModel:
    """The same backend as if a round's samples ran fully in parallel (as on a GPU with room):
    a round of n samples takes as long as one sample of the same length."""
    c, p, _, t, nt = latency.weights
    return LatencyModel((c, p, 0.0, t + nt, 0.0), latency.backend)


def run(name: str, split: Split, latency: LatencyModel) -> dict:
    spec = f"two_stage(k={K}, more={MORE}, temperature={TEMPERATURE:g})"
    strategy = parse_strategy(spec, max_tokens=CAP)
    assert isinstance(strategy, TwoStage)
    X, y, _ = stage2_rows(split.train, strategy, latency)
    model = stage2_model().fit(X, y)
    Xt, yt, _ = stage2_rows(split.test, strategy, latency)
    step = len(strategy.options)
    labels, scores = yt[::step], model.predict_proba(Xt[::step])[:, 1]
    out: dict = {
        "questions": len(labels),
        "train_questions": len(y) // step,
        "stage2": auroc_interval(labels, scores),
        "stop_right": float(np.mean(labels)),
    }
    for regime, lat in (("measured", latency), ("parallel", parallel(latency))):
        out[regime] = compare(split.test, model, spec, lat)
    return out


def compare(pool: list[dict], model: Pipeline, spec: str, latency: LatencyModel) -> dict:
    """Static strategies, adaptive SC and the two-stage strategy (its stage-2 ``model``) at every
    price on the held-out ``pool``, with seconds from ``latency``."""
    static = {s: replay_pool(pool, [s], latency, max_tokens=CAP) for s in (*STATIC, ADAPTIVE, spec)}
    held: dict[tuple[float, float], list[dict]] = {}
    for lt in LAMBDA_TOKENS:
        for ls in LAMBDA_SECONDS if lt == 0 else (0.0,):
            policy = Stage2Policy(model, lt, ls, latency)
            held[(lt, ls)] = replay_pool(pool, [spec], latency, policy, max_tokens=CAP)
    out: dict = {
        "static": {s: summary(r) for s, r in static.items()},
        "two_stage": {f"{lt:g}/{ls:g}": {"lambda_tokens": lt, "lambda_seconds": ls, **summary(r)} for (lt, ls), r in held.items()},
    }  # fmt: skip
    adaptive = static[ADAPTIVE]
    ad = summary(adaptive)
    by_tokens = [(k, v) for k, v in out["two_stage"].items() if v["lambda_seconds"] == 0]
    # Equal tokens: the most accurate two-stage price spending no more tokens than adaptive SC.
    cheaper = [(k, v) for k, v in by_tokens if v["tokens"] <= ad["tokens"]]
    if cheaper:
        key, best = max(cheaper, key=lambda kv: (kv[1]["accuracy"], -kv[1]["tokens"]))
        out["vs_adaptive_equal_tokens"] = {"price": key, "accuracy_gain": paired(held[(best["lambda_tokens"], 0.0)], adaptive, "correct"),
                                           "tokens_ratio": best["tokens"] / ad["tokens"], "seconds_ratio": best["seconds"] / ad["seconds"]}  # fmt: skip
    # Equal accuracy: the fastest two-stage price at least as accurate as adaptive SC.
    as_good = [(k, v) for k, v in by_tokens if v["accuracy"] >= ad["accuracy"]]
    if as_good:
        key, best = min(as_good, key=lambda kv: kv[1]["seconds"])
        out["vs_adaptive_equal_accuracy"] = {"price": key, "seconds": paired(held[(best["lambda_tokens"], 0.0)], adaptive, "seconds"),
                                             "seconds_ratio": best["seconds"] / ad["seconds"], "tokens_ratio": best["tokens"] / ad["tokens"]}  # fmt: skip
    # Latency priced: a second round's share, and the static choice of highest utility.
    out["seconds_priced"] = []
    for ls in LAMBDA_SECONDS:
        ts = out["two_stage"][f"0/{ls:g}"]
        options = {"two_stage": ts, **{s: out["static"][s] for s in STATIC}}
        utility = {k: v["accuracy"] - ls * v["seconds"] for k, v in options.items()}
        out["seconds_priced"].append({"lambda_seconds": ls, "second_round": ts["second_round"], "seconds": ts["seconds"],
                                      "utility": utility, "best": max(utility, key=utility.__getitem__)})  # fmt: skip
    return out


def short(spec: str) -> str:
    """A plot label: the static two-stage strategy runs its default agreement rule."""
    return f"{short_label(spec)}, agreement rule" if spec.startswith("two_stage(") else short_label(spec)


def plot(results: dict, stem: Path) -> list[str]:
    plt = pyplot("the two-stage figures")

    fig, axes = plt.subplots(len(results), 3, figsize=(15, 5.4 * len(results)), squeeze=False)
    for (name, res), (a, *priced) in zip(results.items(), axes, strict=True):
        m = res["measured"]
        ts = sorted((v for v in m["two_stage"].values() if v["lambda_seconds"] == 0), key=lambda v: v["tokens"])
        a.plot(
            [v["tokens"] for v in ts],
            [v["accuracy"] for v in ts],
            "o-",
            color="C0",
            label="two_stage(k=4, more=12), priced",
        )
        for i, (spec, v) in enumerate(m["static"].items()):
            lo, hi = v["accuracy_ci"]
            a.errorbar(v["tokens"], v["accuracy"], yerr=[[v["accuracy"] - lo], [hi - v["accuracy"]]], fmt="s",
                       capsize=3, color=f"C{i + 1}", label=short(spec))  # fmt: skip
        a.set(xscale="log", xlabel="mean tokens per question (log)", ylabel="accuracy (95% bootstrap)",
              title=f"{name}, {res['questions']} held out: accuracy vs tokens")  # fmt: skip
        plain_log_axis(a)
        a.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)  # below the data, never on it
        for ax, regime in zip(priced, ("measured", "parallel"), strict=True):
            sp = res[regime]["seconds_priced"]
            xs = [max(x["lambda_seconds"], 3e-5) for x in sp]
            ax.plot(xs, [x["second_round"] for x in sp], "o-", label="two-stage: share taking a second round")
            for x, row in zip(xs, sp, strict=True):
                ax.annotate(short(row["best"]), (x, 1.02), fontsize=7, rotation=60, ha="left", va="bottom",
                            annotation_clip=False)  # fmt: skip
            ax.set(
                xscale="log", ylim=(0, 1), xlabel="lambda_seconds (log; 0 drawn at 3e-5)", ylabel="share of questions"
            )
            plain_log_axis(ax)
            ax.set_title(f"{name}, {regime} latency: best static choice above", fontsize=9, pad=84)
            ax.legend(fontsize=7, loc="lower left")
    return save_figure(fig, str(stem))


#: The GSM8K peers run replaces the arithmetic one in the README figure once it holds this many
#: questions (it resumes across sessions; fewer would put a handful of questions up front).
README_PEERS_QUESTIONS = 20


def plot_readme(res: dict, peers: dict, stem: Path) -> list[str]:
    """The README's figure. Top: GSM8K accuracy against tokens and against seconds, the priced
    two-stage strategy beside every static strategy and adaptive SC (measured latency). Bottom:
    the peers benchmark (one vllm serve) on GSM8K test questions once that run holds
    `README_PEERS_QUESTIONS` (benchmarks/results/peers-gsm8k.json), else on held-out arithmetic
    (peers.json): ttc-agent serve at its prices beside greedy, majority@8, its-hub and optillm."""
    plt = pyplot("the two-stage figures")

    m = res["measured"]
    fig, grid = plt.subplots(2, 2, figsize=(13.5, 8.4))
    axes = grid[0]
    ours = {k: v for k, v in peers["rows"].items() if k.startswith("ttc-agent serve, lambda")}
    for ax, unit in zip(grid[1], ("completion_tokens", "seconds"), strict=True):
        line = sorted(ours.values(), key=lambda v: v[unit])
        ax.errorbar([v[unit] for v in line], [v["accuracy"] for v in line], fmt="o-", color="C0", capsize=3,
                    yerr=[[v["accuracy"] - v["interval"][0] for v in line], [v["interval"][1] - v["accuracy"] for v in line]],
                    label="ttc-agent serve, lambda_tokens " + ", ".join(k.split("=")[-1] for k in ours))  # fmt: skip
        others = [(k, v) for k, v in peers["rows"].items() if k not in ours]
        for i, (name, v) in enumerate(others):
            lo, hi = v["interval"]
            ax.errorbar(v[unit], v["accuracy"], yerr=[[v["accuracy"] - lo], [hi - v["accuracy"]]], fmt="D",
                        capsize=3, color=f"C{i + 1}", label=name)  # fmt: skip
        label = "completion tokens" if unit == "completion_tokens" else unit
        ax.set(xscale="log", xlabel=f"mean {label} per question (log)", ylabel="accuracy (95% bootstrap)",
               title=f"{peers_task(peers)}, peers: accuracy vs {label}")  # fmt: skip
        plain_log_axis(ax)
    grid[1][1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # beside the data, never on it
    for ax, unit in zip(axes, ("tokens", "seconds"), strict=True):
        ts = sorted((v for v in m["two_stage"].values() if v["lambda_seconds"] == 0), key=lambda v: v[unit])
        ax.plot(
            [v[unit] for v in ts], [v["accuracy"] for v in ts], "o-", color="C0", label="ttc-agent two_stage, priced"
        )
        for i, (spec, v) in enumerate(m["static"].items()):
            lo, hi = v["accuracy_ci"]
            ax.errorbar(v[unit], v["accuracy"], yerr=[[v["accuracy"] - lo], [hi - v["accuracy"]]], fmt="s", capsize=3,
                        color=f"C{i + 1}", label=short(spec))  # fmt: skip
        ax.set(xscale="log", xlabel=f"mean {unit} per question (log)", ylabel="accuracy (95% bootstrap)",
               title=f"GSM8K test pool, {res['questions']} held out: accuracy vs {unit}")  # fmt: skip
        plain_log_axis(ax)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(
        "Qwen2.5-Coder-0.5B-Instruct on 2 CPU cores: GSM8K test pool replayed (stage-2 model fitted on the train pool); "
        f"{'GSM8K test questions' if peers.get('task') == 'gsm8k' else 'arithmetic'} against the peers through one vllm serve",
        fontsize=9,
    )
    return save_figure(fig, str(stem))


def peers_task(peers: dict) -> str:
    """What the peers benchmark asked, for a title."""
    if peers.get("task") == "gsm8k":
        return f"GSM8K test ({peers['questions']} questions)"
    return f"arithmetic ({peers['questions']} held out)"


def doc(results: dict, figures: list[str]) -> str:
    lines = ["The stage-2 model fitted on the train questions' pools, deciding on the held-out ones "
             "(greedy + 16 samples at temperature 0.5, 512 tokens; seconds from the latency model profiled on the "
             "backend, \"measured\", and the same backend as if a round's samples ran fully in parallel, "
             "\"parallel\"): `python -m benchmarks.two_stage`.", ""]  # fmt: skip
    for name, res in results.items():
        m = res["measured"]
        ad = m["static"][ADAPTIVE]
        a = res["stage2"]
        lines += [f"**{name}** ({res['questions']} held out, fitted on {res['train_questions']}): stage-2 AUROC (is the "
                  f"first stage's vote right?) **{a['auroc']:.2f}** {fmt_ci(a['auroc_ci'], '.2f') if a['auroc_ci'] else TOO_FEW} (first stage right on "
                  f"{res['stop_right']:.0%}); adaptive SC "
                  f"{ad['accuracy']:.3f} {fmt_ci(ad['accuracy_ci'])} at {ad['tokens']:.0f} tokens, {ad['seconds']:.1f} s.", ""]  # fmt: skip
        lines += [
            "| strategy | accuracy [95%] | tokens | seconds (measured) | seconds (parallel) | rounds |",
            "|---|---|---|---|---|---|",
        ]
        par = res["parallel"]
        for spec, v in m["static"].items():
            lines.append(f"| {spec} | {v['accuracy']:.3f} {fmt_ci(v['accuracy_ci'])} | {v['tokens']:.0f} | {v['seconds']:.1f} | "
                         f"{par['static'][spec]['seconds']:.1f} | {v['rounds']:.2f} |")  # fmt: skip
        for key, v in m["two_stage"].items():
            if v["lambda_seconds"] == 0:
                lines.append(f"| two_stage, lambda_tokens={v['lambda_tokens']:g} | {v['accuracy']:.3f} {fmt_ci(v['accuracy_ci'])} | "
                             f"{v['tokens']:.0f} | {v['seconds']:.1f} | {par['two_stage'][key]['seconds']:.1f} | {v['rounds']:.2f} |")  # fmt: skip
        lines.append("")
        for regime in ("measured", "parallel"):
            r = res[regime]
            if "vs_adaptive_equal_tokens" in r:
                e = r["vs_adaptive_equal_tokens"]
                lines.append(f"- {regime}: at no more of adaptive SC's tokens ({e['tokens_ratio']:.2f}x, lambda_tokens/seconds "
                             f"{e['price']}): accuracy {e['accuracy_gain']['mean']:+.3f} {fmt_ci(e['accuracy_gain']['ci'])}, "
                             f"seconds {e['seconds_ratio']:.2f}x.")  # fmt: skip
            if "vs_adaptive_equal_accuracy" in r:
                e = r["vs_adaptive_equal_accuracy"]
                lines.append(f"- {regime}: at adaptive SC's accuracy or better ({e['price']}): seconds {e['seconds_ratio']:.2f}x "
                             f"({e['seconds']['mean']:+.1f} s {fmt_ci(e['seconds']['ci'], '.1f')}), tokens {e['tokens_ratio']:.2f}x.")  # fmt: skip
            else:
                lines.append(f"- {regime}: no price of the priced two-stage strategy reaches adaptive SC's accuracy.")
            lines.append(f"- {regime}, pricing seconds (lambda_seconds: share taking a second round, best static choice): "
                         + "; ".join(f"{x['lambda_seconds']:g}: {x['second_round']:.2f}, {short(x['best'])}" for x in r["seconds_priced"]) + ".")  # fmt: skip
        lines.append("")
    lines += [
        f"![two-stage decisions](img/{Path(f).name})" for f in figures if f.endswith(".svg") and "readme" not in f
    ]
    return "\n".join(lines)


def fmt_ci(c: list[float], f: str = ".3f") -> str:
    return f"[{c[0]:{f}}, {c[1]:{f}}]"


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    results = {}
    for name, (split, latency) in datasets().items():
        res = results[name] = run(name, split, latency)
        print(f"{name}: {res['questions']} questions, stage-2 AUROC {res['stage2']['auroc']}")
        for regime in ("measured", "parallel"):
            print(f" {regime} latency")
            for spec, v in res[regime]["static"].items():
                print(f"  {spec:50s} acc {v['accuracy']:.3f} tokens {v['tokens']:7.0f} seconds {v['seconds']:6.1f}")
            for key, v in res[regime]["two_stage"].items():
                print(f"  two_stage at {key:37s} acc {v['accuracy']:.3f} tokens {v['tokens']:7.0f} seconds {v['seconds']:6.1f} "
                      f"second round {v['second_round']:.2f}")  # fmt: skip
    figures = plot(results, REPO / "docs" / "img" / "two-stage")
    word_problems = saved_results("peers-gsm8k")
    enough = word_problems.get("questions", 0) >= README_PEERS_QUESTIONS
    peers = word_problems if enough else saved_results("peers")
    figures += plot_readme(results["gsm8k"], peers, REPO / "docs" / "img" / "readme-gsm8k")
    write_results("two_stage", {"k": K, "more": MORE, "temperature": TEMPERATURE, "results": results,
                                "figures": [str(Path(f).relative_to(REPO)) for f in figures]})  # fmt: skip
    refresh("two_stage")
    print(f"results: benchmarks/results/two_stage.json; doc block in {DOC.relative_to(REPO)}")


def doc_blocks(results: dict) -> dict[str, str]:
    """The docs' blocks of saved two-stage results: the tables and the figure list."""
    stems = sorted({Path(f).stem for f in results["figures"]}, key=lambda s: s.startswith("readme"))
    figures = figure_list(
        "Every figure of this section, redrawn by `python -m benchmarks.two_stage`:",
        [s for s in stems if not s.startswith("readme")],
    ) + "".join(
        f"\n- {s} (the README's figure): [png](img/{s}.png), [svg](img/{s}.svg)"
        for s in stems
        if s.startswith("readme")
    )
    return {"two-stage": doc(results["results"], results["figures"]), "figures-two-stage": figures}


if __name__ == "__main__":
    main()
