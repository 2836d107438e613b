"""Verifiers compared on held-out questions of the embedded model: arithmetic by level, and GSM8K.

Uses the traces benchmarks/probes.py collects (benchmarks/traces/arithmetic): every sampled
candidate of the best-of-4 and best-of-8 runs, with its correctness. Problems are split as
the probes are (30% held out). On the held-out best-of-8 runs it compares selection by
majority vote, mean token logprob (the score recorded at generation), the judge verifier
(the same model asked "is this correct?"), and the learned verifier trained on the train
split: outcome (whole candidates) and process (also step prefixes labelled by rollouts, the
Math-Shepherd recipe; rollouts are collected here for the train split). Reports per verifier:
candidate AUROC, best-of-8 accuracy, weighted-vote accuracy, pass@8 and greedy by level, and
verifier tokens and seconds per run. Then beam search scored by the process verifier runs once
on every problem (resumable, benchmarks/traces/arithmetic-process-beam) and is compared on
the held-out ones with the traced beam search of the same shape scored by logprobs.

It also writes benchmarks/traces/arithmetic-learned: the arithmetic traces plus
``best_of_n(8, select=verifier:<outcome verifier>)``, re-selected from the same best-of-8
samples with the verifier's cost added, and the process-scored beam search, so
benchmarks/policy.py can put both on the menu. (On the train split both verifiers have seen
these questions' candidates: only held-out figures are free of that.)

GSM8K (the traces benchmarks/strategies.py writes, benchmarks/traces/gsm8k): the same
comparison for the outcome verifier, cross-fitted over ``--folds`` folds of the 30 problems
(right candidates are rare, so every problem is held out once and every sampled candidate of
the other folds trains). A trace folder collected on another model (``--datasets
qwen-arithmetic,qwen-gsm8k``) gets the same cross-fitted comparison, the verifier reading that
model's hidden states and that model judging.

Writes benchmarks/results/verifiers.json, one entry per dataset (a dataset not run is kept).

    .venv/bin/python -m benchmarks.verifiers [--datasets arithmetic,gsm8k] [--rollouts 4]
        [--rollout-questions 30] [--train-on bo8] [--folds 3]
    .venv/bin/python -m benchmarks.verifiers --datasets qwen-arithmetic,qwen-gsm8k --folds 5 --train-on bo8 [--no-judge]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks._common import REPO, interleave, saved_results, traced_model, write_results  # noqa: E402

HERE = Path(__file__).resolve().parent
TRACES = HERE / "traces" / "arithmetic"
OUTCOME = HERE / "traces" / "verifier-outcome"
PROCESS = HERE / "traces" / "verifier-process"
LEARNED_TRACES = HERE / "traces" / "arithmetic-learned"
PROCESS_BEAM_TRACES = HERE / "traces" / "arithmetic-process-beam"
# Strategy specs name the learned verifiers by their path from the repository root (the
# benchmarks run there, see _common), so no result records this machine's folders.
PROCESS_BEAM = f"beam(width=2, expand=2, max_steps=4, verifier=learned:{PROCESS.relative_to(REPO)})"
BO8 = "best_of_n(8, select=weighted_majority)"
GSM8K_BO8 = "best_of_n(8, select=majority)"
console = Console()


def _pick_by(scores, answers, labels, weighted: bool) -> bool:
    """Whether selecting by ``scores`` (argmax, or summed per answer) picks a right candidate."""
    if weighted:
        total: dict = defaultdict(float)
        for s, a in zip(scores, answers, strict=True):
            if a is not None:
                total[a] += s
        if not total:
            return False
        best = max(total, key=total.get)
        return next(lab for a, lab in zip(answers, labels, strict=True) if a == best)
    return bool(labels[int(np.argmax(scores))])


def _majority(answers, labels) -> bool:
    counts: dict = defaultdict(int)
    for a in answers:
        if a is not None:
            counts[a] += 1
    if not counts:
        return False
    best = max(counts, key=counts.get)
    return next(lab for a, lab in zip(answers, labels, strict=True) if a == best)


def interleaved_by_level(records, ids: set[str], limit: int) -> set[str]:
    """``limit`` of the problem ids (all when 0), taken in turn from each level."""
    level = {r["problem_id"]: r["level"] for r in records}
    order = interleave([sorted(p for p in ids if level[p] == lv) for lv in sorted({level[p] for p in ids})])
    return set(order[:limit] if limit else order)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--datasets",
        default="arithmetic,gsm8k",
        help="comma-separated: arithmetic, gsm8k, or a trace folder under benchmarks/traces collected on "
        "another model, e.g. qwen-arithmetic (unrun ones are kept)",
    )
    parser.add_argument("--rollouts", type=int, default=4, help="continuations per step prefix (process labels)")
    parser.add_argument(
        "--rollout-questions",
        type=int,
        default=0,
        help="train questions whose best-of-8 candidates get rollouts, levels interleaved (0: all)",
    )
    parser.add_argument(
        "--no-process", action="store_true", help="skip the rollouts, the process verifier and its beam search"
    )
    parser.add_argument(
        "--train-on",
        default="all",
        choices=["all", "bo8"],
        help="candidates to train on (arithmetic and other models' folders): every sampled run, or best-of-8 only",
    )
    parser.add_argument("--folds", type=int, default=3, help="GSM8K and other models: cross-fitting folds")
    parser.add_argument("--no-judge", action="store_true", help="other models: leave the judge verifier out")
    args = parser.parse_args()
    from ttc_agent.backends import TransformersBackend

    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = sorted(d for d in datasets if not (TRACES.parent / d / "meta.json").is_file())
    if unknown:
        parser.error(f"no trace folder for {unknown} under {TRACES.parent}")
    results = saved_results("verifiers")  # a dataset not run is kept
    embedded = TransformersBackend() if {"arithmetic", "gsm8k"} & set(datasets) else None
    if "arithmetic" in datasets:
        results["arithmetic"] = arithmetic(args, embedded)
    if "gsm8k" in datasets:
        results["gsm8k"] = cross_fitted("gsm8k", args.folds, embedded)
    for name in datasets:
        if name not in ("arithmetic", "gsm8k"):
            model = traced_model(TRACES.parent / name)["model"]
            backend = None if args.no_judge else TransformersBackend(model)
            results[name] = cross_fitted(name, args.folds, backend, judge=not args.no_judge, train_on=args.train_on)
    console.print(f"wrote {write_results('verifiers', results)}")


def arithmetic(args: argparse.Namespace, backend) -> dict:
    """Outcome and process verifiers trained on the arithmetic train split, compared on the
    held-out best-of-8 runs, then beam search with process scores; writes the learned traces."""
    from ttc_agent.evaluation.collect import read_traces
    from ttc_agent.evaluation.rollouts import collect_rollouts, read_rollouts
    from ttc_agent.probes import split_ids
    from ttc_agent.verifiers import JudgeVerifier
    from ttc_agent.verifiers.learned import (
        CandidateEncoder,
        LearnedVerifier,
        examples_from_traces,
        prefixes_from_rollouts,
    )

    records = read_traces(TRACES)
    problems = sorted({r["problem_id"] for r in records})
    _, test_idx = split_ids(problems, 0.3)
    test_ids = {problems[i] for i in test_idx}
    train_ids = set(problems) - test_ids

    # -- train the outcome and process verifiers on the train split ---------------------------
    questions, candidates, labels, ids = examples_from_traces(
        [r for r in records if args.train_on == "all" or r["strategy"] == BO8]
    )
    train = [i for i, pid in enumerate(ids) if pid in train_ids]
    encoder = CandidateEncoder()
    started = time.perf_counter()
    outcome = LearnedVerifier(encoder, kind="outcome").fit(
        [questions[i] for i in train], [candidates[i] for i in train], [labels[i] for i in train]
    )
    outcome.save(OUTCOME)
    console.print(
        f"outcome verifier: {sum(len(candidates[i]) for i in train)} candidates, {time.perf_counter() - started:.0f} s"
    )
    process = None
    if not args.no_process:
        labelled = interleaved_by_level(records, train_ids, args.rollout_questions)
        collect_rollouts(TRACES, backend, n=args.rollouts, per_run=1, problems=labelled, strategies={BO8})
        pq, pc, py, pids = prefixes_from_rollouts(read_rollouts(TRACES), records)
        keep = [i for i, pid in enumerate(pids) if pid in labelled]
        process = LearnedVerifier(encoder, kind="process").fit(
            [questions[i] for i in train] + [pq[i] for i in keep],
            [candidates[i] for i in train] + [pc[i] for i in keep],
            [labels[i] for i in train] + [py[i] for i in keep],
        )
        process.save(PROCESS)
        prefixes = sum(len(pc[i]) for i in keep)
        console.print(
            f"process verifier: plus {prefixes} step prefixes of {len(labelled)} questions, "
            f"labelled by {args.rollouts} rollouts each"
        )

    # -- score the held-out best-of-8 runs ------------------------------------------------------
    held = [r for r in records if r["problem_id"] in test_ids and r["strategy"] == BO8]
    greedy = {r["problem_id"]: r["correct"] for r in records if r["strategy"] == "greedy"}
    verifiers = {
        "learned outcome": outcome,
        "judge": JudgeVerifier(),
        **({"learned process": process} if process else {}),
    }
    per_run = score_runs(held, verifiers, backend)
    summary = {"held_out_problems": len(test_ids), **summarize(per_run, greedy)}
    console.print(
        comparison_table(summary, f"arithmetic: {len(per_run)} held-out best-of-8 runs ({len(test_ids)} problems)")
    )

    # -- beam search scored by the process verifier on every problem; held-out ones compared ----
    beams = []
    if process is not None:
        beams = collect_process_beams(records, backend)
        summary["beam"] = beam_comparison(records, beams, test_ids)
        console.print(summary["beam"])

    # -- traces with the learned-verifier strategies, for the policy benchmark ------------------
    summary["learned_traces"] = write_learned_traces(records, outcome, backend, beams)
    return summary


def cross_fitted(name: str, folds: int, backend, judge: bool = True, train_on: str = "all") -> dict:
    """The outcome verifier on the trace folder ``name`` (SmolLM2's GSM8K, or a folder collected
    on another model), cross-fitted: the problems fall into ``folds`` groups by a hash of their
    id, each group's best-of-8 runs are scored by a verifier trained on every sampled candidate
    of the other groups (right candidates are rare, so all of them are needed). The verifier
    reads the hidden states of the model the traces were collected on, and the judge (when
    ``judge``) is that model too (``backend``). ``train_on="bo8"`` trains on the best-of-8
    runs' candidates only (reading every sampled candidate of a 0.5B model is most of an hour
    on 2 cores). No process verifier: rollouts of 192-token GSM8K steps are hours of this CPU."""
    from ttc_agent.evaluation.collect import read_traces
    from ttc_agent.probes.table import fold_of
    from ttc_agent.verifiers import JudgeVerifier
    from ttc_agent.verifiers.learned import CandidateEncoder, LearnedVerifier, examples_from_traces

    traces = TRACES.parent / name
    records = read_traces(traces)
    problems = sorted({r["problem_id"] for r in records})
    fold = {pid: fold_of(pid, folds) for pid in problems}
    trained = records if train_on == "all" else [r for r in records if r["strategy"] == GSM8K_BO8]
    questions, candidates, labels, ids = examples_from_traces(trained)
    greedy = {r["problem_id"]: r["correct"] for r in records if r["strategy"] == "greedy"}
    model = traced_model(traces)
    encoder = CandidateEncoder(model["model"] if model["model_sha256"] else None)
    verifiers: dict = {"judge": JudgeVerifier()} if judge else {}
    per_run, started = [], time.perf_counter()
    for k in range(folds):
        train = [i for i, pid in enumerate(ids) if fold[pid] != k]
        held = [r for r in records if fold[r["problem_id"]] == k and r["strategy"] == GSM8K_BO8]
        outcome = LearnedVerifier(encoder, kind="outcome").fit(
            [questions[i] for i in train], [candidates[i] for i in train], [labels[i] for i in train]
        )
        per_run += score_runs(held, {"learned outcome": outcome, **verifiers}, backend)
    positives, total = sum(sum(row) for row in labels), sum(map(len, candidates))
    console.print(
        f"{name}: {folds} folds, {total} candidates ({positives} right), {time.perf_counter() - started:.0f} s"
    )
    summary = {
        **model,
        "folds": folds,
        "trained_on": train_on,
        "layers": list(encoder.layers),
        "problems": len(problems),
        "candidates": total,
        "right_candidates": positives,
        **summarize(per_run, greedy),
    }
    console.print(comparison_table(summary, f"{name}: {len(per_run)} best-of-8 runs, cross-fitted over {folds} folds"))
    return summary


def score_runs(held: list[dict], verifiers: dict, backend) -> list[dict]:
    """Every held-out best-of-N run scored by the logprob recorded at generation and by each
    verifier (with the verifier's tokens and seconds)."""
    from ttc_agent.answers import answer_key
    from ttc_agent.evaluation.datasets import Problem

    per_run = []
    for r in held:
        q = Problem.from_record(r).question
        texts = [c["text"] for c in r["candidates"]]
        row = {
            "problem_id": r["problem_id"],
            "level": r["level"],
            "labels": [bool(c["correct"]) for c in r["candidates"]],
            "answers": [answer_key(c["answer"]) for c in r["candidates"]],
            "scores": {"logprob (mean)": [c["score"] for c in r["candidates"]]},
            "cost": {"logprob (mean)": (0, 0.0)},
        }
        for name, v in verifiers.items():
            scored = v.score(q, texts, backend=backend)
            row["scores"][name], row["cost"][name] = list(scored.values), (scored.tokens, scored.seconds)
        per_run.append(row)
    return per_run


def summarize(per_run: list[dict], greedy: dict) -> dict:
    """Per verifier: candidate AUROC, best-of-N and weighted-vote accuracy by level, cost; the
    greedy, majority and pass@N baselines; the share of the greedy-to-pass@N gap closed, on
    level 2 and over all levels."""
    from ttc_agent.probes.metrics import auroc

    names = list(per_run[0]["scores"])
    levels = [str(lv) for lv in sorted({r["level"] for r in per_run if r["level"] is not None})]

    def rows_of(level: str) -> list[dict]:
        return [r for r in per_run if level == "all" or str(r["level"]) == level]

    summary: dict = {"held_out_runs": len(per_run), "verifiers": {}, "baselines": {}}
    for level in [*levels, "all"]:
        rows = rows_of(level)
        summary["baselines"][level] = {
            "runs": len(rows),
            "greedy": float(np.mean([greedy[pid] for pid in {r["problem_id"] for r in rows}])),
            "majority": float(np.mean([_majority(r["answers"], r["labels"]) for r in rows])),
            "pass@8": float(np.mean([any(r["labels"]) for r in rows])),
        }
    base2 = summary["baselines"].get("2")
    for name in names:
        by_level = {
            level: {
                "best_of_8": float(
                    np.mean([_pick_by(r["scores"][name], r["answers"], r["labels"], False) for r in rows])
                ),
                "weighted_vote": float(
                    np.mean([_pick_by(r["scores"][name], r["answers"], r["labels"], True) for r in rows])
                ),
            }
            for level in [*levels, "all"]
            for rows in [rows_of(level)]
        }
        summary["verifiers"][name] = {
            "auroc": auroc(
                np.array([x for r in per_run for x in r["labels"]]),
                np.array([s for r in per_run for s in r["scores"][name]]),
            ),
            "tokens_per_run": float(np.mean([r["cost"][name][0] for r in per_run])),
            "seconds_per_run": float(np.mean([r["cost"][name][1] for r in per_run])),
            "by_level": by_level,
            "gap_closed_level2": _gap_closed(by_level["2"]["best_of_8"], base2) if base2 else None,
            "gap_closed": _gap_closed(by_level["all"]["best_of_8"], summary["baselines"]["all"]),
        }
    return summary


def _gap_closed(accuracy: float, baseline: dict) -> float | None:
    """The share of the greedy-to-pass@8 gap that ``accuracy`` closes (``None``: no gap)."""
    gap = baseline["pass@8"] - baseline["greedy"]
    return None if gap <= 0 else (accuracy - baseline["greedy"]) / gap


def comparison_table(summary: dict, title: str) -> Table:
    """`summarize`'s figures as a rich table, one row per verifier and baseline."""
    levels = [lv for lv in summary["baselines"] if lv != "all"]
    t = Table(title=title)
    for col in (
        "verifier",
        "AUROC",
        *(f"bo8 L{lv}" for lv in levels),
        "bo8 all",
        "weighted all",
        "gap closed L2",
        "gap closed all",
        "tokens/run",
        "s/run",
    ):
        t.add_column(col)
    for name, v in summary["verifiers"].items():
        gap, gap_all = v["gap_closed_level2"], v.get("gap_closed")
        t.add_row(
            name,
            "-" if v["auroc"] is None else f"{v['auroc']:.3f}",
            *(f"{v['by_level'][lv]['best_of_8']:.2f}" for lv in levels),
            f"{v['by_level']['all']['best_of_8']:.3f}",
            f"{v['by_level']['all']['weighted_vote']:.3f}",
            "-" if gap is None else f"{gap:.0%}",
            "-" if gap_all is None else f"{gap_all:.0%}",
            f"{v['tokens_per_run']:.0f}",
            f"{v['seconds_per_run']:.2f}",
        )
    for base in ("greedy", "majority", "pass@8"):
        b = summary["baselines"]
        t.add_row(base, "", *(f"{b[lv][base]:.2f}" for lv in levels), f"{b['all'][base]:.3f}", "", "", "", "", "")
    return t


def collect_process_beams(records, backend) -> list[dict]:
    """Beam search scored by the process verifier, run once on every arithmetic problem
    (resumable: `collect` appends to benchmarks/traces/arithmetic-process-beam)."""
    from ttc_agent.evaluation.collect import collect, read_meta, read_traces
    from ttc_agent.evaluation.datasets import Problem
    from ttc_agent.strategies.menu import Menu

    problems = {r["problem_id"]: Problem.from_record(r) for r in records}
    menu = Menu((PROCESS_BEAM,), read_meta(TRACES)["menu"]["defaults"])
    collect(list(problems.values()), menu, backend, PROCESS_BEAM_TRACES, dataset="arithmetic")
    return read_traces(PROCESS_BEAM_TRACES)


def beam_comparison(records, beams, test_ids: set[str]) -> dict:
    """Held-out accuracy and cost, by level, of the process-scored beam search against the
    traced beam search of the same shape scored by mean token logprob (mean over each
    problem's runs)."""
    traced = "beam(width=2, expand=2, max_steps=4)"

    def per_problem(runs, key):
        by: dict = defaultdict(list)
        for r in runs:
            if r["problem_id"] in test_ids:
                by[(r["level"], r["problem_id"])].append(r[key])
        return {k: float(np.mean(v)) for k, v in by.items()}

    results = {}
    for name, runs in (("process", beams), ("logprob", [r for r in records if r["strategy"] == traced])):
        correct, tokens = per_problem(runs, "correct"), per_problem(runs, "total_tokens")
        seconds = per_problem(runs, "seconds")
        levels = sorted({lv for lv, _ in correct})
        results[name] = {
            "problems": len(correct),
            "accuracy": float(np.mean(list(correct.values()))),
            "by_level": {str(lv): float(np.mean([v for k, v in correct.items() if k[0] == lv])) for lv in levels},
            "tokens_per_run": float(np.mean(list(tokens.values()))),
            "seconds_per_run": float(np.mean(list(seconds.values()))),
        }
    verifier_tokens = per_problem(beams, "verifier_tokens")
    results["process"]["verifier_tokens_per_run"] = float(np.mean(list(verifier_tokens.values())))
    return {"spec": PROCESS_BEAM.replace(f"{HERE.parent}/", ""), "traced": traced, **results}


def write_learned_traces(records, verifier, backend, beams=()) -> str:
    """The arithmetic traces plus best-of-8 re-selected by the outcome verifier (same samples;
    the verifier's tokens and seconds added to the run's cost) and the process-scored beam
    search runs ``beams``."""
    from ttc_agent.evaluation.collect import read_meta, write_trace_folder
    from ttc_agent.evaluation.datasets import Problem

    spec = f"best_of_n(8, select=verifier, verifier=learned:{OUTCOME.relative_to(REPO)})"
    meta = read_meta(TRACES)
    added = [spec, *dict.fromkeys(r["strategy"] for r in beams)]
    meta = {**meta, "menu": {**meta["menu"], "strategies": [*meta["menu"]["strategies"], *added]}}
    out = [*beams]
    for r in records:
        out.append(r)
        if r["strategy"] != BO8:
            continue
        problem = Problem.from_record(r)
        s = verifier.score(problem.question, [c["text"] for c in r["candidates"]], backend=backend)
        c = r["candidates"][int(np.argmax(s.values))]
        out.append(
            {
                **r,
                "strategy": spec,
                "answer": c["answer"],
                "correct": c["correct"],
                "verifier_tokens": s.tokens,
                "total_tokens": r["total_tokens"] + s.tokens,
                "seconds": r["seconds"] + s.seconds,
                "verifier_seconds": s.seconds,
                "candidates": [{**k, "score": v} for k, v in zip(r["candidates"], s.values, strict=True)],
            }
        )
    write_trace_folder(LEARNED_TRACES, meta, out)
    return str(LEARNED_TRACES.relative_to(HERE.parent))


if __name__ == "__main__":
    main()
