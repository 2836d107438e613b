"""Workflow budgets: the simulator on held-out traces, and a real run on the embedded model.

1. Simulator (`ttc_agent.evaluation.simulate`), per trace folder (``--datasets``: arithmetic from
   benchmarks/probes.py, gsm8k from benchmarks/strategies.py): 10,000 synthetic workflows of
   ``--steps`` calls drawn from every problem, each predicted by probes cross-fitted over
   ``--folds`` folds (fitted without it; ``--folds 0``: only the held-out split), at several
   total token budgets (multiples of what always-greedy spends), under the `EqualSplit` and
   `Paced` managers and the baselines: always greedy, always best-of-8, per-call adaptive
   with fixed prices calibrated to the budget (no manager), the hindsight oracle, and the spend
   ceiling (the most expensive strategy the guarantees allow on every call).
2. Real run (``--real N``): N multi-step workflows of the example agent (`ttc_agent.demo`) on
   ``--model`` (transformers) under each ``--real-budget TOKENS:SECONDS``, choosing per call
   with the probes shipped for the model and, with ``--real-modes adaptive,greedy``, the same
   workflows with greedy forced on every call under the same budget; the ledger is checked
   against the backend's own token counts and a wall clock.

Writes benchmarks/results/budgets.json (a part, dataset or real budget not run this time is
kept from the file) and docs/img/budgets-success-<dataset>-*.png.

    .venv/bin/python -m benchmarks.budgets [--parts simulator,real] [--datasets arithmetic,gsm8k]
        [--workflows 10000] [--steps 4] [--real 20] [--real-budget 700:20 --real-budget 350:8]
    .venv/bin/python -m benchmarks.budgets --parts simulator --datasets qwen-arithmetic --features text_stats
    .venv/bin/python -m benchmarks.budgets --parts real --model qwen2.5-coder-0.5b --real 10 \
        --real-budget 400:30 --real-budget 200:12 --real-modes adaptive,greedy
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from rich.console import Console

from benchmarks._common import (  # noqa: E402
    DEFAULT_FEATURES,
    fitted_bundle,
    latency_for,
    saved_results,
    traced_model,
    write_results,
)
from benchmarks.docs import figure_list, refresh

HERE = Path(__file__).resolve().parent
TRACES = HERE / "traces"
IMG = HERE.parent / "docs" / "img"
console = Console()


#: Feasibility quantiles the simulator also runs the paced manager at (the budgets' default, 0.9,
#: is the main table).
QUANTILES = (0.5, 0.75)


def label_multiples(rows: list[dict], multiples: tuple[float, ...]) -> None:
    """Mark each simulation row with its budget as a multiple of always-greedy's spend (the
    simulator returns the same allocations, in order, for each budget)."""
    for r, m in zip(rows, [m for m in multiples for _ in range(len(rows) // len(multiples))], strict=True):
        r["budget_vs_greedy"] = m


def simulator(dataset: str, workflows: int, steps: int, folds: int, features: str = DEFAULT_FEATURES) -> dict:
    from ttc_agent.budgets import WorkflowBudget
    from ttc_agent.cli.tables import simulation_table
    from ttc_agent.evaluation.collect import read_traces
    from ttc_agent.evaluation.probe_training import cross_fit
    from ttc_agent.evaluation.simulate import simulate
    from ttc_agent.plotting import plot_simulation
    from ttc_agent.probes import TraceTable

    # The bundle's calibration sets the Paced manager's starting prices.
    bundle = fitted_bundle(TRACES / dataset, features=features)
    if folds:
        table, pred = cross_fit(TRACES / dataset, features, latency=latency_for(TRACES / dataset), folds=folds)
    else:
        table = bundle.held_out(TraceTable.from_records(read_traces(TRACES / dataset), bundle.specs))
        pred = bundle.predict(table.prompts, table.prompt_tokens)
    greedy = float(table.mean("greedy", "total_tokens").mean())
    multiples = (1.0, 1.5, 2.0, 3.0, 5.0, 8.0)
    budgets = [WorkflowBudget(max_tokens=int(m * greedy * steps)) for m in multiples]
    statics = [s for s in bundle.specs if s == "greedy" or s.startswith("best_of_n(8")]
    results = {}
    for share in (1.0, 0.75):
        rows = simulate(
            table,
            pred,
            budgets,
            steps=steps,
            workflows=workflows,
            statics=statics,
            calibration=bundle.calibration_,
            success_share=share,
        )
        label_multiples(rows, multiples)
        name = "all" if share == 1.0 else f"share{share:g}"
        what = "every step right" if share == 1.0 else f"at least {share:.0%} of steps right"
        plots = plot_simulation(rows, str(IMG / f"budgets-success-{dataset}-{name}"), workflows,
                                f"{dataset}: {workflows:,} simulated workflows of {steps} steps, success = {what}")  # fmt: skip
        results[name] = {
            "success_share": share,
            "rows": rows,
            "plots": [str(Path(p).relative_to(HERE.parent)) for p in plots],
        }
        title = f"{dataset}: {workflows} workflows x {steps} calls, {len(table.ids)} problems, success = {share:.0%} of steps right"
        console.print(simulation_table(rows, title))
    # The feasibility quantile's effect (success = at least 3 of 4 steps right; q90 is above).
    sweep = {}
    for q in QUANTILES:
        quantiled = [WorkflowBudget(max_tokens=b.max_tokens, quantile=q) for b in budgets]
        rows = simulate(
            table,
            pred,
            quantiled,
            steps=steps,
            workflows=workflows,
            managers=("paced",),
            calibration=bundle.calibration_,
            success_share=0.75,
        )
        label_multiples(rows, multiples)
        sweep[f"{q:g}"] = [r for r in rows if r["allocation"] in ("paced", "spend_ceiling")]
    results["quantiles"] = sweep
    return {
        **traced_model(TRACES / dataset),
        "problems": len(table.ids),
        "predictions": f"cross-fitted over {folds} folds" if folds else "held-out split",
        "features": features,
        "greedy_tokens_per_call": greedy,
        "steps": steps,
        "workflows": workflows,
        **results,
    }


def markdown(sim: dict) -> str:
    """One dataset's simulation as markdown: success per allocation and budget (at least 3 of
    4 steps right, then all of them), paced's margin over fixed prices, utilisation, gap closed,
    and the spend ceiling's utilisation and success."""
    lines = []
    for name, label in (("share0.75", "at least 3 of 4 steps right"), ("all", "every step right")):
        rows = sim[name]["rows"]
        by = {(r["budget_vs_greedy"], r["allocation"]): r for r in rows}
        bo8 = next(a for _, a in by if a.startswith("static:best_of_n(8"))
        # Simulations saved before the spend ceiling existed have no such rows: their tables end earlier.
        ceiling = any(a == "spend_ceiling" for _, a in by)
        lines += [
            f"Success = {label}:",
            "",
            "| budget (tokens) | paced | equal split | always greedy | always best-of-8 | adaptive, fixed prices | its overruns | oracle | paced - adaptive | paced utilisation | gap closed (paced) |"
            + (" spend ceiling: utilisation | its success |" if ceiling else ""),
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if ceiling else ""),
        ]  # fmt: skip
        for m in sorted({r["budget_vs_greedy"] for r in rows}):
            p, a = by[(m, "paced")], by[(m, "adaptive")]
            gap = p.get("gap_closed_vs_adaptive")
            c = by[(m, "spend_ceiling")] if ceiling else None
            lines.append(
                f"| {p['max_tokens']} ({m:g}x) | {p['success']:.3f} | {by[(m, 'equal')]['success']:.3f} | "
                f"{by[(m, 'static:greedy')]['success']:.3f} | {by[(m, bo8)]['success']:.3f} | {a['success']:.3f} | "
                f"{a['violations']:,} | {by[(m, 'oracle')]['success']:.3f} | {100 * (p['success'] - a['success']):+.1f} pts | "
                f"{p['utilisation_tokens']:.0%} | {'-' if gap is None else f'{gap:.0%}'} |"
                + ("" if c is None else f" {c['utilisation_tokens']:.0%} | {c['success']:.3f} |")
            )
        lines.append("")
    if "quantiles" in sim:
        lines += quantile_markdown(sim)
    return "\n".join(lines).rstrip()


def quantile_markdown(sim: dict) -> list[str]:
    """Paced and the spend ceiling at each feasibility quantile (at least 3 of 4 steps right)."""
    by = {(0.9, r["budget_vs_greedy"], r["allocation"]): r for r in sim["share0.75"]["rows"]}
    for q, rows in sim["quantiles"].items():
        by.update({(float(q), r["budget_vs_greedy"], r["allocation"]): r for r in rows})
    qs = sorted({k[0] for k in by})
    lines = [
        "The feasibility quantile (`WorkflowBudget(quantile=...)`), at least 3 of 4 steps right: paced "
        "success / utilisation, and the spend ceiling's utilisation / success:",
        "",
        "| budget | "
        + " | ".join(f"paced, q={q:g}" for q in qs)
        + " | "
        + " | ".join(f"ceiling, q={q:g}" for q in qs)
        + " |",
        "|---|" + "---:|" * (2 * len(qs)),
    ]
    for m in sorted({k[1] for k in by}):
        paced = [by[(q, m, "paced")] for q in qs]
        ceiling = [by[(q, m, "spend_ceiling")] for q in qs]
        lines.append(
            f"| {m:g}x | "
            + " | ".join(f"{r['success']:.3f} / {r['utilisation_tokens']:.0%}" for r in paced)
            + " | "
            + " | ".join(f"{r['utilisation_tokens']:.0%} / {r['success']:.3f}" for r in ceiling)
            + " |"
        )
    return lines


class CountingBackend:
    """Wraps a backend and adds up the tokens it reports for every generation."""

    def __init__(self, inner) -> None:
        self.inner, self.tokens = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def generate(self, prompts, params=None, **kwargs):
        gen = self.inner.generate(prompts, params, **kwargs)
        self.tokens += gen.prompt_tokens + gen.completion_tokens
        return gen


def real_run(n: int, max_tokens: int, max_seconds: float, model: str, mode: str = "adaptive") -> dict:
    """``n`` multi-step workflows of the example agent on ``model``, each under the same tight
    budget, choosing per call (``mode="adaptive"``) or greedy on every call (``"greedy"``)."""
    from ttc_agent.backends import TransformersBackend
    from ttc_agent.budgets import WorkflowBudget, budget_exhausted
    from ttc_agent.demo import make_graph, shipped_probes
    from ttc_agent.nodes import TTCContext, TTCEngine, TTCNode

    inner = TransformersBackend(model)
    backend = CountingBackend(inner)
    node = TTCNode(TTCEngine(backend, shipped_probes(inner)))
    graph = make_graph(node)
    budget = WorkflowBudget(max_tokens=max_tokens, max_seconds=max_seconds, expected_calls=3)
    rng = random.Random(0)
    rows = []
    for i in range(n):
        terms = [rng.randint(2, 40) for _ in range(4)]
        question = "What is " + " + ".join(map(str, terms)) + "?"
        before = backend.tokens
        started = time.perf_counter()
        try:
            context = TTCContext(
                budget=budget, answer_scope="first_result", strategy="greedy" if mode == "greedy" else None
            )
            out = graph.invoke({"question": question}, context=context)
            error = None
        except Exception as exc:  # counted, not hidden: the target is zero
            out, error = {}, repr(exc)
        wall = time.perf_counter() - started
        ledger = out.get("ttc_ledger")
        steps = out.get("steps", [])
        rows.append(
            {
                "question": question,
                "steps_done": len(steps),
                "exhausted": bool(out) and budget_exhausted(out),
                "right": bool(steps) and len(steps) == 3 and steps[-1]["answer"] == str(sum(terms)),
                "ledger_tokens": None if ledger is None else ledger.tokens,
                "backend_tokens": backend.tokens - before,
                "ledger_seconds": None if ledger is None else ledger.seconds,
                "llm_seconds": sum(s["seconds"] for s in steps),
                "wall_seconds": wall,
                "choices": [s["choice"] for s in steps],
                "error": error,
            }
        )
        r = rows[-1]
        console.print(
            f"{i + 1}/{n} {question}: {r['steps_done']} steps {r['choices']}, ledger {r['ledger_tokens']} tok / "
            f"backend {r['backend_tokens']} tok, {r['ledger_seconds'] or 0:.1f} s ledger, {wall:.1f} s wall"
            + (", exhausted" if r["exhausted"] else "")
            + (f", ERROR {error}" if error else "")
        )
    overrun_t = [r["ledger_tokens"] - max_tokens for r in rows if r["ledger_tokens"] is not None]
    overrun_s = [r["ledger_seconds"] - max_seconds for r in rows if r["ledger_seconds"] is not None]
    summary = {
        "model": inner.fingerprint(),
        "mode": mode,
        "workflows": n,
        "budget": {"max_tokens": max_tokens, "max_seconds": max_seconds, "expected_calls": 3},
        "ledger_matches_backend": all(r["ledger_tokens"] == r["backend_tokens"] for r in rows),
        "token_overruns": sum(1 for x in overrun_t if x > 0),
        "max_seconds_overrun": max(overrun_s) if overrun_s else None,
        "max_wall_minus_budget": max(r["wall_seconds"] for r in rows) - max_seconds,
        "exhausted": sum(r["exhausted"] for r in rows),
        "exceptions": sum(r["error"] is not None for r in rows),
        "right": sum(r["right"] for r in rows),
        "rows": rows,
    }
    console.print({k: v for k, v in summary.items() if k != "rows"})
    return summary


def real_budget(text: str) -> tuple[int, float]:
    """``TOKENS:SECONDS`` as a pair, for ``--real-budget``."""
    try:
        tokens, seconds = text.split(":")
        return int(tokens), float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected TOKENS:SECONDS such as 700:20, got {text!r}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="simulator,real", help="what to run: simulator, real, or both")
    parser.add_argument(
        "--datasets", default="arithmetic,gsm8k", help="trace folders under benchmarks/traces for the simulator"
    )
    parser.add_argument(
        "--folds",
        type=int,
        default=5,
        help="draw workflows from every problem with cross-fitted probes (0: only the held-out split)",
    )
    parser.add_argument("--workflows", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument(
        "--features",
        default=DEFAULT_FEATURES,
        help="the simulator's probe features (the reference model's: text_stats)",
    )
    parser.add_argument("--real", type=int, default=20, help="real workflows per budget")
    parser.add_argument("--model", default="smollm2-135m", help="the real run's model (a registered name)")
    parser.add_argument(
        "--real-modes",
        default="adaptive",
        help="per call choice (adaptive) and/or greedy forced on every call (greedy), comma-separated",
    )
    parser.add_argument(
        "--real-budget",
        action="append",
        type=real_budget,
        help="TOKENS:SECONDS of one real run's budget (repeatable; default 700:20 and 350:8)",
    )
    args = parser.parse_args()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if unknown := parts - {"simulator", "real"}:
        parser.error(f"unknown parts {sorted(unknown)}; expected simulator and/or real")
    modes = [m.strip() for m in args.real_modes.split(",") if m.strip()]
    if bad := set(modes) - {"adaptive", "greedy"}:
        parser.error(f"unknown --real-modes {sorted(bad)}; expected adaptive and/or greedy")
    data = saved_results("budgets")
    if "simulator" in parts:
        simulated = data.setdefault("simulator", {})
        for name in (n for n in args.datasets.split(",") if n):
            simulated[name] = simulator(name, args.workflows, args.steps, args.folds, args.features)

    if "real" in parts:
        real = data.setdefault("real", {})
        for tokens, seconds in args.real_budget or [(700, 20.0), (350, 8.0)]:
            for mode in modes:
                # The embedded model's adaptive runs keep their first key.
                key = (
                    f"{tokens}:{seconds:g}"
                    if (args.model, mode) == ("smollm2-135m", "adaptive")
                    else f"{args.model} {tokens}:{seconds:g} {mode}"
                )
                real[key] = real_run(args.real, tokens, seconds, args.model, mode)
    path = write_results("budgets", data)
    console.print(f"wrote {path}")
    refresh("budgets")


def doc_blocks(results: dict) -> dict[str, str]:
    """The docs' blocks of saved budget results: one simulation table per dataset and the
    success figures' lists (the reference model's ``qwen-*`` apart from the embedded model's)."""
    simulated = results.get("simulator", {})
    blocks = {f"budgets-{name}": markdown(sim) for name, sim in simulated.items()}
    for suffix, names in (("-qwen", [n for n in simulated if n.startswith("qwen-")]),
                          ("", [n for n in simulated if not n.startswith("qwen-")])):  # fmt: skip
        stems = sorted(f"budgets-success-{n}-{part}" for n in names for part in ("all", "share0.75"))
        blocks[f"figures-budgets-success{suffix}"] = figure_list(
            "Every figure of this section, redrawn by `python -m benchmarks.budgets --parts simulator --datasets NAME` "
            "(the trace folder in the name):",
            stems,
        )
    return blocks


if __name__ == "__main__":
    main()
