"""Workflow budgets: the simulator on held-out traces, and a real run on the embedded model.

1. Simulator (`ttc_agent.budgets.simulate`): probes fitted on the train split of the arithmetic
   traces that benchmarks/probes.py collected (benchmarks/traces/arithmetic); 10,000 synthetic
   workflows of ``--steps`` calls drawn from the held-out problems, at several total token
   budgets (multiples of what always-greedy spends), under the `EqualSplit` and `Paced`
   managers and the baselines: always greedy, always best-of-8, per-call adaptive with fixed
   prices calibrated to the budget (no manager), and the hindsight oracle.
2. Real run (``--real N``): N multi-step workflows of the example agent (`ttc_agent.demo`) on
   the embedded model, each under a tight token and seconds budget; the ledger is checked
   against the backend's own token counts and a wall clock.

Writes benchmarks/results/budgets.json and docs/img/budgets-success.png.

    .venv/bin/python benchmarks/budgets.py [--workflows 10000] [--steps 4] [--real 20]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fitted_bundle, write_results  # noqa: E402

HERE = Path(__file__).resolve().parent
TRACES = HERE / "traces" / "arithmetic"
IMG = HERE.parent / "docs" / "img"
console = Console()


def simulator(workflows: int, steps: int) -> dict:
    from ttc_agent.budgets import WorkflowBudget
    from ttc_agent.budgets.simulate import plot_simulation, simulate, simulation_table
    from ttc_agent.evaluation.collect import read_traces
    from ttc_agent.probes import TraceTable

    bundle = fitted_bundle(TRACES)
    table = TraceTable.from_records(read_traces(TRACES), bundle.specs)
    table = bundle.held_out(table)
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
            calibration=bundle.calibration,
            success_share=share,
        )
        for r, m in zip(rows, [m for m in multiples for _ in range(len(rows) // len(multiples))], strict=True):
            r["budget_vs_greedy"] = m
        name = "all" if share == 1.0 else f"share{share:g}"
        plots = plot_simulation(rows, str(IMG / f"budgets-success-{name}"))
        results[name] = {
            "success_share": share,
            "rows": rows,
            "plots": [str(Path(p).relative_to(HERE.parent)) for p in plots],
        }
        title = f"{workflows} workflows x {steps} calls, {len(table.ids)} held-out problems, success = {share:.0%} of steps right"
        console.print(simulation_table(rows, title))
    return {
        "problems": len(table.ids),
        "greedy_tokens_per_call": greedy,
        "steps": steps,
        "workflows": workflows,
        **results,
    }


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


def real_run(n: int, max_tokens: int, max_seconds: float) -> dict:
    """``n`` multi-step workflows of the example agent, each under the same tight budget."""
    from ttc_agent.backends import TransformersBackend
    from ttc_agent.budgets import WorkflowBudget, budget_exhausted
    from ttc_agent.demo import make_graph, shipped_probes
    from ttc_agent.nodes import TTCContext, TTCNode

    inner = TransformersBackend()
    backend = CountingBackend(inner)
    node = TTCNode(backend, shipped_probes(inner))
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
            out = graph.invoke({"question": question}, context=TTCContext(budget=budget))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--real", type=int, default=20, help="real workflows on the embedded model (0 to skip)")
    parser.add_argument("--real-max-tokens", type=int, default=700)
    parser.add_argument("--real-max-seconds", type=float, default=20.0)
    parser.add_argument("--keep-simulator", action="store_true", help="reuse the simulator part of budgets.json")
    args = parser.parse_args()
    if args.keep_simulator:
        import json

        from _common import RESULTS

        data = {"simulator": json.loads((RESULTS / "budgets.json").read_text())["simulator"]}
    else:
        data = {"simulator": simulator(args.workflows, args.steps)}
    if args.real:
        data["real"] = real_run(args.real, args.real_max_tokens, args.real_max_seconds)
    path = write_results("budgets", data)
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
