"""Strategies on real data with the embedded model: accuracy, pass@N, tokens, seconds, rounds.

Runs greedy, best-of-4/8/16 and beam search (width 2 and 4) on arithmetic questions (by
level) and GSM8K test questions, one query at a time. Each (problem, strategy) run is
appended to benchmarks/results/strategies-runs.jsonl as it finishes, so an interrupted run
resumes where it stopped. Best-of-N samples are drawn once per N and all three selection rules
(verifier = mean logprob, majority, weighted majority) are applied to the same samples, so
they share one cost. Prints a table, writes benchmarks/results/strategies.json and the
markdown table into docs/benchmarks.md.

The GSM8K runs double as GSM8K traces for the probe, policy and budget benchmarks: they are
written to benchmarks/traces/gsm8k in `ttc-agent collect`'s format (this menu, one run per
strategy and question), since collecting a separate k-run trace set costs about 5 minutes a
question on this CPU.

    .venv/bin/python -m benchmarks.strategies [--per-level 20] [--gsm8k 30] [--report-only]
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path
from statistics import mean

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from benchmarks._common import RESULTS, mean_interval, write_results
from benchmarks.docs import refresh  # noqa: E402

RUNS = RESULTS / "strategies-runs.jsonl"
TRACES = Path(__file__).resolve().parent / "traces"
SELECTIONS = ("verifier", "majority", "weighted_majority")
#: Trace folders hold each sample's confidence, so DeepConf's filter is replayed on them too.
TRACE_SELECTIONS = (*SELECTIONS, "confident_majority")


def menu(dataset: str, seed: int):
    """The strategies compared, sampling with ``seed`` (one per problem, for reproducibility)."""
    from ttc_agent.strategies import BeamSearch, BestOfN, Greedy

    tokens = 64 if dataset == "arithmetic" else 192
    step = 48 if dataset == "arithmetic" else 64
    return [
        Greedy(max_tokens=tokens),
        BestOfN(4, max_tokens=tokens, seed=seed),
        BestOfN(8, max_tokens=tokens, seed=seed),
        BestOfN(16, max_tokens=tokens, seed=seed),
        BeamSearch(width=2, expand=2, max_steps=6, max_step_tokens=step, max_tokens=tokens, seed=seed),
        BeamSearch(width=4, expand=4, max_steps=6, max_step_tokens=step, max_tokens=tokens, seed=seed),
    ]


def menu_of(dataset: str):
    """The strategies of `menu` as a `Menu` (specs plus their shared ``max_tokens``)."""
    from ttc_agent.strategies.menu import Menu

    strategies = menu(dataset, seed=0)
    return Menu(tuple(s.spec for s in strategies), {"max_tokens": strategies[0].sampling.max_tokens})


def export_traces(runs: list[dict], dataset: str, out: Path) -> int:
    """Write ``dataset``'s complete runs as a trace folder (``traces.jsonl`` + ``meta.json``,
    `ttc_agent.evaluation.collect`'s format, repeat 0) and return how many problems it holds."""
    from ttc_agent.backends import TransformersBackend
    from ttc_agent.evaluation.collect import write_trace_folder

    m = menu_of(dataset)
    by_problem: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in runs:
        if r["dataset"] == dataset and r["strategy"] in m.specs:
            by_problem[r["problem_id"]][r["strategy"]] = r
    complete = [p for p, rs in by_problem.items() if len(rs) == len(m.specs)]
    meta = {
        "menu": m.to_dict(),
        "backend": TransformersBackend().fingerprint(),
        "dataset": dataset,
        "source": "benchmarks/results/strategies-runs.jsonl",
    }
    write_trace_folder(out, meta, [{**by_problem[p][s], "repeat": 0} for p in complete for s in m.specs])
    return len(complete)


def problems(per_level: int, gsm8k: int):
    from ttc_agent.evaluation.datasets import arithmetic, load_gsm8k

    return arithmetic(per_level=per_level, levels=(1, 2, 3), seed=1) + (
        load_gsm8k("test", limit=gsm8k) if gsm8k else []
    )


def collect(per_level: int, gsm8k: int, runs: Path) -> None:
    from ttc_agent.backends import TransformersBackend
    from ttc_agent.evaluation.records import outcome_record

    done = {(r["problem_id"], r["strategy"]) for r in load_runs(runs)}
    todo = [
        (p, s)
        for i, p in enumerate(problems(per_level, gsm8k))
        for s in menu(p.source, seed=i)
        if (p.id, s.spec) not in done
    ]
    if not todo:
        return
    backend = TransformersBackend()
    with Progress() as progress, runs.open("a") as out:
        task = progress.add_task("strategies", total=len(todo))
        for problem, strategy in todo:
            outcome = strategy.run(problem, backend)
            out.write(json.dumps(outcome_record(problem, outcome)) + "\n")
            out.flush()
            progress.advance(task)


def load_runs(runs: Path) -> list[dict]:
    if not runs.exists():
        return []
    return [json.loads(line) for line in runs.read_text().splitlines() if line.strip()]


def label(spec: str, rule: str | None) -> str:
    if spec.startswith("best_of_n"):
        n = re.search(r"\((\d+)", spec).group(1)
        return f"best-of-{n} ({rule})"
    if spec.startswith("beam"):
        w, e = re.search(r"width=(\d+), expand=(\d+)", spec).groups()
        return f"beam w={w} x{e}"
    if spec.startswith("adaptive_sc"):
        return "adaptive SC (" + spec[len("adaptive_sc(") : -1] + ")"
    return spec


def summarise(runs: list[dict], selections: tuple[str, ...] = SELECTIONS) -> dict:
    from ttc_agent.evaluation.records import reselect

    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in runs:
        group = f"{r['dataset']} L{r['level']}" if r["dataset"] == "arithmetic" else r["dataset"]
        groups[(group, r["strategy"])].append(r)
        if r["dataset"] == "arithmetic":
            groups[("arithmetic all", r["strategy"])].append(r)
    rows = []
    for (group, spec), rs in sorted(groups.items()):
        rules = selections if spec.startswith("best_of_n") else (None,)
        for rule in rules:
            correct = [reselect(r, rule) if rule else r["correct"] for r in rs]
            rows.append(
                {
                    "group": group,
                    "strategy": label(spec, rule),
                    "spec": spec,
                    "n": len(rs),
                    "accuracy": round(mean(correct), 3),
                    "interval": mean_interval(correct),
                    "pass_at_n": round(mean(r["pass"] for r in rs), 3),
                    "completion_tokens": round(mean(r["completion_tokens"] for r in rs), 1),
                    "seconds": round(mean(r["seconds"] for r in rs), 2),
                    "rounds": round(mean(r["rounds"] for r in rs), 2),
                }
            )
    return {"rows": rows, "targets": targets(rows)}


def targets(rows: list[dict]) -> dict:
    """The issues' targets, measured in this run: best-of-8 seconds vs greedy's, beam tokens vs
    best-of-N's, adaptive self-consistency against majority@16, and confidence-filtered voting
    against plain majority at the same N."""
    out = {}
    for group in sorted({r["group"] for r in rows}):
        by = {r["strategy"]: r for r in rows if r["group"] == group}
        bo16 = by.get("best-of-16 (majority)")
        for name, r in by.items():
            if name.startswith("adaptive SC") and bo16:
                out[f"{group}: {name} accuracy - majority@16's"] = round(r["accuracy"] - bo16["accuracy"], 3)
                out[f"{group}: {name} / majority@16 completion tokens (target <= 0.5)"] = round(
                    r["completion_tokens"] / bo16["completion_tokens"], 2
                )
                out[f"{group}: {name} / majority@16 seconds"] = round(r["seconds"] / bo16["seconds"], 2)
        for n in (4, 8, 16):
            plain, confident = by.get(f"best-of-{n} (majority)"), by.get(f"best-of-{n} (confident_majority)")
            if plain and confident:
                out[f"{group}: confident majority@{n} accuracy - majority@{n}'s"] = round(
                    confident["accuracy"] - plain["accuracy"], 3
                )
        greedy, bo8 = by.get("greedy"), by.get("best-of-8 (majority)")
        if greedy and bo8:
            out[f"{group}: best-of-8 / greedy seconds (target <= 3)"] = round(bo8["seconds"] / greedy["seconds"], 2)
        for beam, bon in (("beam w=2 x2", "best-of-4 (majority)"), ("beam w=4 x4", "best-of-16 (majority)")):
            if beam in by and bon in by:
                out[f"{group}: {beam} / {bon} completion tokens (target < 1)"] = round(
                    by[beam]["completion_tokens"] / by[bon]["completion_tokens"], 2
                )
    return out


def markdown(summary: dict) -> str:
    ci = " [95% CI]" if any("interval" in r for r in summary["rows"]) else ""
    lines = [
        f"| group | strategy | questions | accuracy{ci} | pass@N | completion tokens | seconds | rounds |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary["rows"]:
        ci = f" [{r['interval'][0]:.2f}, {r['interval'][1]:.2f}]" if "interval" in r else ""
        lines.append(
            f"| {r['group']} | {r['strategy']} | {r['n']} | {r['accuracy']:.2f}{ci} | {r['pass_at_n']:.2f} | {r['completion_tokens']:.0f} | {r['seconds']:.2f} | {r['rounds']:.1f} |"
        )
    lines += ["", "| target | measured |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in summary["targets"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-level", type=int, default=20, help="arithmetic questions per level (levels 1-3)")
    parser.add_argument("--gsm8k", type=int, default=30, help="GSM8K test questions (0 to skip)")
    parser.add_argument("--report-only", action="store_true", help="summarise the runs already recorded")
    parser.add_argument("--runs", type=Path, default=RUNS, help="the append-only file of per-run records")
    parser.add_argument(
        "--traces",
        help="instead: summarise these trace folders under benchmarks/traces (comma-separated, one model's), "
        "e.g. qwen-arithmetic,qwen-gsm8k for the reference model",
    )
    args = parser.parse_args()
    if args.traces:
        summarise_traces([TRACES / name for name in args.traces.split(",") if name])
        return
    if not args.report_only:
        collect(args.per_level, args.gsm8k, args.runs)
    # Only this run's questions: the file also keeps runs of questions an earlier generator drew.
    wanted = {p.id for p in problems(args.per_level, args.gsm8k)}
    runs = [r for r in load_runs(args.runs) if r["problem_id"] in wanted]
    summary = summarise(runs)
    table = Table(title="Strategies on the embedded model")
    for col in ("group", "strategy", "n", "acc", "pass@N", "tokens", "seconds", "rounds"):
        table.add_column(col)
    for r in summary["rows"]:
        table.add_row(
            r["group"],
            r["strategy"],
            str(r["n"]),
            f"{r['accuracy']:.2f}",
            f"{r['pass_at_n']:.2f}",
            f"{r['completion_tokens']:.0f}",
            f"{r['seconds']:.2f}",
            f"{r['rounds']:.1f}",
        )
    console = Console()
    console.print(table)
    for k, v in summary["targets"].items():
        console.print(f"{k}: {v}")
    write_results(
        "strategies", {"model": "SmolLM2-135M-Instruct", "per_level": args.per_level, "gsm8k": args.gsm8k, **summary}
    )
    refresh("strategies")
    if args.gsm8k:
        n = export_traces(runs, "gsm8k", TRACES / "gsm8k")
        console.print(f"wrote {n} GSM8K questions as traces to {TRACES / 'gsm8k'}")


def replay_adaptive(runs: list[dict], thresholds=(0.8, 0.9, 0.95, 0.99), batch: int = 4) -> list[dict]:
    """Adaptive self-consistency replayed on majority@16's samples, in the order they were drawn
    (batches of ``batch``, stopping once `majority_settled` reaches the threshold): accuracy and
    completion tokens per group at each threshold, where the traced runs hold one threshold.
    Seconds are not replayed (rounds are sequential requests; see the traced rows)."""
    from ttc_agent.strategies import Candidate
    from ttc_agent.strategies.adaptive import majority_settled
    from ttc_agent.strategies.selection import majority

    rows = []
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in runs:
        if r["strategy"] == "best_of_n(16, select=majority)":
            group = f"{r['dataset']} L{r['level']}" if r["dataset"] == "arithmetic" else r["dataset"]
            groups[group].append(r)
            if r["dataset"] == "arithmetic":
                groups["arithmetic all"].append(r)
    for group, rs in sorted(groups.items()):
        for t in thresholds:
            correct, tokens, rounds = [], [], []
            for r in rs:
                cands = [Candidate("", k["answer"], k["score"], k["tokens"], k["finish"]) for k in r["candidates"]]
                used = len(cands)
                for end in range(batch, len(cands) + 1, batch):
                    if majority_settled(cands[:end]) >= t:
                        used = end
                        break
                chosen = majority(cands[:used])
                correct.append(bool(r["candidates"][cands.index(chosen)]["correct"]))
                tokens.append(sum(k["tokens"] for k in r["candidates"][:used]))
                rounds.append(used / batch)
            rows.append({
                "group": group, "threshold": t, "n": len(rs), "accuracy": round(mean(correct), 3),
                "interval": mean_interval(correct), "completion_tokens": round(mean(tokens), 1),
                "rounds": round(mean(rounds), 2),
            })  # fmt: skip
    return rows


def summarise_traces(folders: list[Path]) -> None:
    """The strategies table of trace folders collected with `ttc-agent collect` on one model (the
    first repeat of each run), written to benchmarks/results/strategies-<model>.json and the
    ``strategies-<model>`` block of docs/benchmarks.md."""
    from ttc_agent.evaluation.collect import read_meta, read_traces
    from ttc_agent.probes.machines import seconds_on_one_machine

    runs, source = [], {}
    for folder in folders:
        meta = read_meta(folder)
        source = meta["backend"].get("source", {})
        # Seconds on the clock of the machine that traced most of the folder.
        first = [r for r in seconds_on_one_machine(read_traces(folder)) if r.get("repeat", 0) == 0]
        specs = defaultdict(set)
        for r in first:
            specs[r["problem_id"]].add(r["strategy"])
        # Questions with every strategy of the menu traced (a collection may stop mid-question).
        runs += [r for r in first if len(specs[r["problem_id"]]) == len(meta["menu"]["strategies"])]
    model = source.get("name", "model")
    summary = summarise(runs, TRACE_SELECTIONS)
    summary["adaptive_replayed"] = replay_adaptive(runs)
    console = Console()
    table = Table(title=f"Strategies on {model} (traces: {', '.join(f.name for f in folders)})")
    for col in ("group", "strategy", "n", "acc [95% CI]", "pass@N", "tokens", "seconds", "rounds"):
        table.add_column(col)
    for r in summary["rows"]:
        table.add_row(r["group"], r["strategy"], str(r["n"]),
                      f"{r['accuracy']:.2f} [{r['interval'][0]:.2f}, {r['interval'][1]:.2f}]",
                      f"{r['pass_at_n']:.2f}", f"{r['completion_tokens']:.0f}", f"{r['seconds']:.2f}",
                      f"{r['rounds']:.1f}")  # fmt: skip
    console.print(table)
    for k, v in summary["targets"].items():
        console.print(f"{k}: {v}")
    for r in summary["adaptive_replayed"]:
        console.print(
            f"adaptive SC replayed on majority@16's samples, {r['group']}, threshold {r['threshold']}: "
            f"accuracy {r['accuracy']:.2f}, {r['completion_tokens']:.0f} tokens, {r['rounds']:.1f} rounds"
        )
    data = {"model": model, "model_sha256": source.get("gguf_sha256"), "traces": [f.name for f in folders], **summary}
    console.print(f"wrote {write_results(f'strategies-{model}', data)}")
    refresh(f"strategies-{model}")


def doc_blocks(results: dict) -> dict[str, str]:
    """The docs' strategies block of saved results: the embedded model's (`strategies`), or a
    traced model's with adaptive self-consistency replayed on its samples (`strategies-MODEL`)."""
    if "adaptive_replayed" not in results:
        return {"strategies": markdown(results)}
    replayed = [
        "",
        "Adaptive self-consistency replayed on majority@16's samples in the order they were drawn "
        "(batches of 4; seconds are not replayed):",
        "",
        "| group | threshold | questions | accuracy [95% CI] | completion tokens | rounds |",
        "|---|---:|---:|---:|---:|---:|",
    ] + [
        f"| {r['group']} | {r['threshold']} | {r['n']} | {r['accuracy']:.2f} [{r['interval'][0]:.2f}, "
        f"{r['interval'][1]:.2f}] | {r['completion_tokens']:.0f} | {r['rounds']:.1f} |"
        for r in results["adaptive_replayed"]
    ]
    return {f"strategies-{results['model']}": markdown(results) + "\n".join(replayed)}


if __name__ == "__main__":
    main()
