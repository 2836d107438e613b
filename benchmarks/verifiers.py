"""Verifiers compared on held-out arithmetic questions of the embedded model, by level.

Uses the traces benchmarks/probes.py collects (benchmarks/traces/arithmetic): every sampled
candidate of the best-of-4 and best-of-8 runs, with its correctness. Problems are split as
the probes are (30% held out). On the held-out best-of-8 runs it compares selection by
majority vote, mean token logprob (the score recorded at generation), the judge verifier
(the same model asked "is this correct?"), and the learned verifier trained on the train
split: outcome (whole candidates) and process (also step prefixes labelled by rollouts, the
Math-Shepherd recipe; rollouts are collected here for the train split). Reports per verifier:
candidate AUROC, best-of-8 accuracy, weighted-vote accuracy, pass@8 and greedy by level, and
verifier tokens and seconds per run; then beam search on held-out questions scored by the
process verifier against the traced beam search scored by logprobs.

It also writes benchmarks/traces/arithmetic-learned: the arithmetic traces plus
``best_of_n(8, select=verifier:<outcome verifier>)``, re-selected from the same best-of-8
samples with the verifier's cost added, so benchmarks/policy.py can put it on the menu.

    .venv/bin/python benchmarks/verifiers.py [--rollouts 4] [--rollout-questions 20] [--beam-questions 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleave, write_results  # noqa: E402

HERE = Path(__file__).resolve().parent
TRACES = HERE / "traces" / "arithmetic"
OUTCOME = HERE / "traces" / "verifier-outcome"
PROCESS = HERE / "traces" / "verifier-process"
LEARNED_TRACES = HERE / "traces" / "arithmetic-learned"
BO8 = "best_of_n(8, select=weighted_majority)"
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
    parser.add_argument("--rollouts", type=int, default=4, help="continuations per step prefix (process labels)")
    parser.add_argument(
        "--rollout-questions",
        type=int,
        default=0,
        help="train questions whose best-of-8 candidates get rollouts, levels interleaved (0: all)",
    )
    parser.add_argument("--beam-questions", type=int, default=20, help="held-out questions for beam search (0: skip)")
    parser.add_argument("--no-process", action="store_true", help="skip the rollouts and the process verifier")
    parser.add_argument(
        "--train-on",
        default="all",
        choices=["all", "bo8"],
        help="candidates to train on: every sampled run, or best-of-8 only",
    )
    args = parser.parse_args()
    from ttc_agent.answers import answer_key
    from ttc_agent.backends import TransformersBackend
    from ttc_agent.evaluation.collect import read_meta, read_traces
    from ttc_agent.evaluation.datasets import Problem
    from ttc_agent.evaluation.rollouts import collect_rollouts, read_rollouts
    from ttc_agent.probes import split_ids
    from ttc_agent.probes.metrics import auroc
    from ttc_agent.strategies import parse_strategy
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
    backend = TransformersBackend()

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
    judge = JudgeVerifier()
    verifiers = {"learned outcome": outcome, "judge": judge, **({"learned process": process} if process else {})}
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
            s = v.score(q, texts, backend=backend)
            row["scores"][name], row["cost"][name] = list(s.values), (s.tokens, s.seconds)
        per_run.append(row)
    names = ["logprob (mean)", *verifiers]
    levels = sorted({r["level"] for r in per_run})
    summary: dict = {"held_out_problems": len(test_ids), "held_out_runs": len(per_run), "verifiers": {}}
    for name in names:
        y = [lab for r in per_run for lab in r["labels"]]
        p = [s for r in per_run for s in r["scores"][name]]
        by_level = {}
        for level in levels + ["all"]:
            rows = [r for r in per_run if level == "all" or r["level"] == level]
            by_level[str(level)] = {
                "best_of_8": float(
                    np.mean([_pick_by(r["scores"][name], r["answers"], r["labels"], False) for r in rows])
                ),
                "weighted_vote": float(
                    np.mean([_pick_by(r["scores"][name], r["answers"], r["labels"], True) for r in rows])
                ),
            }
        summary["verifiers"][name] = {
            "auroc": auroc(np.array(y), np.array(p)),
            "tokens_per_run": float(np.mean([r["cost"][name][0] for r in per_run])),
            "seconds_per_run": float(np.mean([r["cost"][name][1] for r in per_run])),
            "by_level": by_level,
        }
    baselines = {}
    for level in levels + ["all"]:
        rows = [r for r in per_run if level == "all" or r["level"] == level]
        pids = {r["problem_id"] for r in rows}
        baselines[str(level)] = {
            "runs": len(rows),
            "greedy": float(np.mean([greedy[pid] for pid in pids])),
            "majority": float(np.mean([_majority(r["answers"], r["labels"]) for r in rows])),
            "pass@8": float(np.mean([any(r["labels"]) for r in rows])),
        }
    summary["baselines"] = baselines
    for name in names:
        lv = summary["verifiers"][name]["by_level"]
        summary["verifiers"][name]["gap_closed_level2"] = (
            None
            if "2" not in baselines or baselines["2"]["pass@8"] <= baselines["2"]["greedy"]
            else (lv["2"]["best_of_8"] - baselines["2"]["greedy"])
            / (baselines["2"]["pass@8"] - baselines["2"]["greedy"])
        )

    t = Table(title=f"verifiers on {len(per_run)} held-out best-of-8 runs ({len(test_ids)} problems)")
    for col in (
        "verifier",
        "AUROC",
        *(f"bo8 L{lv}" for lv in levels),
        "bo8 all",
        "weighted all",
        "gap closed L2",
        "tokens/run",
        "s/run",
    ):
        t.add_column(col)
    for name in names:
        v = summary["verifiers"][name]
        gap = v["gap_closed_level2"]
        t.add_row(
            name,
            "-" if v["auroc"] is None else f"{v['auroc']:.3f}",
            *(f"{v['by_level'][str(lv)]['best_of_8']:.2f}" for lv in levels),
            f"{v['by_level']['all']['best_of_8']:.3f}",
            f"{v['by_level']['all']['weighted_vote']:.3f}",
            "-" if gap is None else f"{gap:.0%}",
            f"{v['tokens_per_run']:.0f}",
            f"{v['seconds_per_run']:.2f}",
        )
    for base in ("greedy", "majority", "pass@8"):
        t.add_row(
            base,
            "",
            *(f"{baselines[str(lv)][base]:.2f}" for lv in levels),
            f"{baselines['all'][base]:.3f}",
            "",
            "",
            "",
            "",
        )
    console.print(t)

    # -- beam search with process scores on held-out questions --------------------------------
    if args.beam_questions and process is not None:
        beam_traced = "beam(width=2, expand=2, max_steps=4)"
        by_problem = {
            r["problem_id"]: r for r in records if r["strategy"] == beam_traced and r["problem_id"] in test_ids
        }
        chosen = sorted(by_problem)[: args.beam_questions]
        meta = read_meta(TRACES)
        spec = f"beam(width=2, expand=2, max_steps=4, verifier=learned:{PROCESS})"
        strategy = parse_strategy(spec, **meta["menu"]["defaults"])
        runs = []
        for pid in chosen:
            problem = Problem.from_record(by_problem[pid])
            out = strategy.run(problem, backend)
            runs.append(
                {
                    "problem_id": pid,
                    "level": problem.level,
                    "process": problem.is_correct(out.answer),
                    "logprob": by_problem[pid]["correct"],
                    **out.cost.as_dict(),
                }
            )
        summary["beam"] = {
            "spec": spec,
            "questions": len(runs),
            "by_level": {
                str(lv): {
                    "process": float(np.mean([r["process"] for r in runs if r["level"] == lv])),
                    "logprob": float(np.mean([r["logprob"] for r in runs if r["level"] == lv])),
                }
                for lv in sorted({r["level"] for r in runs})
            },
            "process_accuracy": float(np.mean([r["process"] for r in runs])),
            "logprob_accuracy": float(np.mean([r["logprob"] for r in runs])),
            "verifier_tokens_per_run": float(np.mean([r["verifier_tokens"] for r in runs])),
            "seconds_per_run": float(np.mean([r["seconds"] for r in runs])),
        }
        console.print({k: v for k, v in summary["beam"].items()})

    # -- traces with the learned-verifier strategy, for the policy benchmark --------------------
    summary["learned_traces"] = write_learned_traces(records, outcome, backend)
    path = write_results("verifiers", summary)
    console.print(f"wrote {path}")


def write_learned_traces(records, verifier, backend) -> str:
    """The arithmetic traces plus best-of-8 re-selected by the outcome verifier (same samples;
    the verifier's tokens and seconds added to the run's cost)."""
    from ttc_agent.evaluation.collect import read_meta
    from ttc_agent.evaluation.datasets import Problem

    spec = f"best_of_n(8, select=verifier, verifier=learned:{OUTCOME})"
    meta = read_meta(TRACES)
    LEARNED_TRACES.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "menu": {**meta["menu"], "strategies": [*meta["menu"]["strategies"], spec]}}
    (LEARNED_TRACES / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    with (LEARNED_TRACES / "traces.jsonl").open("w") as out:
        for r in records:
            out.write(json.dumps(r) + "\n")
            if r["strategy"] != BO8:
                continue
            problem = Problem.from_record(r)
            s = verifier.score(problem.question, [c["text"] for c in r["candidates"]], backend=backend)
            best = int(np.argmax(s.values))
            c = r["candidates"][best]
            out.write(
                json.dumps(
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
                + "\n"
            )
    return str(LEARNED_TRACES.relative_to(HERE.parent))


if __name__ == "__main__":
    main()
