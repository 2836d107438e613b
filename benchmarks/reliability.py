"""Reliability under faults and load, against a real `vllm serve` of the embedded model.

**Faults.** Multi-step math workflows (the demo graph, checkpointed in memory, each under its
own workflow budget) run through `benchmarks.faults.FaultProxy`, with a two-stage strategy on
the menu (`two_stage_bundle`: the shipped bundle refitted with ``two_stage(k=2, more=6)``
replayed from its traced best-of-8 samples, its stage-2 model fitted on them; every other
workflow is made to run it, so its second round meets the faults too), which injects every fault kind
(429 with Retry-After, 500, connection resets, bodies cut off, stalls past the timeout,
malformed JSON) into a share of the generation requests. A workflow that raises is resumed
from its checkpoint (``invoke(None, config)``), at most three times. Counted: faults per kind,
workflows completed, budget violations (a ledger above its allowance), work lost (a step
checkpointed before a failure missing after the resume) and the latency retries added to the
calls they saved (`Generation.retry_seconds`).

**Load.** 32 graph threads at once, each with its own budget, against the same server:
requests/s through `TTCNode` (greedy forced, so both sides generate the same) against the same
requests sent straight through `OpenAIBackend`; ledgers checked for crosstalk (a thread's
ledger equals the sum of its own calls) and overrun.

Prints a table and writes benchmarks/results/reliability.json.

    .venv/bin/python -m benchmarks.reliability [--workflows 32] [--rate 0.3] [--threads 32]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks._common import REPO, write_results  # noqa: E402
from benchmarks.docs import refresh  # noqa: E402
from benchmarks.faults import FAULTS, FaultProxy  # noqa: E402
from ttc_agent.backends import Generation, OpenAIBackend, VLLMServer  # noqa: E402
from ttc_agent.budgets import WorkflowBudget  # noqa: E402
from ttc_agent.budgets.pool import POOL  # noqa: E402
from ttc_agent.demo import SHIPPED_PROBES, make_graph  # noqa: E402
from ttc_agent.errors import TTCError  # noqa: E402
from ttc_agent.nodes import TTCContext, TTCEngine, TTCNode  # noqa: E402
from ttc_agent.probes import ProbeBundle  # noqa: E402

MAX_TOKENS = 1200
#: The two-stage strategy put on the menu, and run by every other workflow.
TWO_STAGE = "two_stage(k=2, more=6)"
#: Each request's timeout, and how long a stalled request hangs (past it).
TIMEOUT, STALL = 30.0, 32.0
RESUMES = 3


class CountingBackend(OpenAIBackend):
    """`OpenAIBackend` that keeps every answered call's retry latency."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_seconds: list[float] = []
        self._lock = threading.Lock()

    def generate(self, *args: Any, **kwargs: Any) -> Generation:
        gen = super().generate(*args, **kwargs)
        with self._lock:
            self.retry_seconds.append(gen.retry_seconds)
        return gen


def questions(n: int, seed: int = 0) -> list[str]:
    """Sums of three two-digit numbers (two model calls each)."""
    rng = np.random.default_rng(seed)
    return [f"What is {' + '.join(str(int(x)) for x in rng.integers(10, 99, size=3))}?" for _ in range(n)]


def two_stage_bundle() -> ProbeBundle:
    """The embedded model's shipped bundle with `TWO_STAGE` on its menu: its traces
    (benchmarks/traces/arithmetic) and the two-stage strategy replayed from their best-of-8
    samples, refitted; the stage-2 model fitted on the same samples."""
    from ttc_agent.evaluation.collect import read_traces
    from ttc_agent.evaluation.pool_replay import fit_stage2, replay_pool
    from ttc_agent.evaluation.pools import pool_from_traces
    from ttc_agent.strategies.menu import Menu

    shipped = ProbeBundle.load(SHIPPED_PROBES)
    traces = read_traces(REPO / "benchmarks" / "traces" / "arithmetic")
    cap = int(shipped.menu.defaults["max_tokens"])
    pool = [dict(r, max_tokens=cap) for r in pool_from_traces(traces, "best_of_n(8, select=weighted_majority)")]
    menu = Menu((*shipped.specs, TWO_STAGE), shipped.menu.defaults)
    assert shipped.latency is not None
    replayed = replay_pool(pool, [TWO_STAGE], shipped.latency, **menu.defaults)
    asked = {r["problem_id"] for r in replayed}
    bundle = ProbeBundle(menu, shipped.features, latency=shipped.latency, fingerprint=shipped.fingerprint)
    bundle.fit([r for r in traces if r["problem_id"] in asked] + replayed)
    fit_stage2(bundle, pool, shipped.latency)
    return bundle


def run_workflow(
    app: Any, question: str, thread: str, budget: WorkflowBudget, strategy: str | None = None
) -> dict[str, Any]:
    """Run one workflow (``strategy`` forced when given), resuming it from its checkpoint after
    a failure; count what was lost."""
    config = {"configurable": {"thread_id": thread}}
    context = TTCContext(budget=budget, strategy=strategy)
    failures: list[str] = []
    checkpointed: list[dict[str, Any]] = []  # steps the checkpointer held after each failure
    payload: dict[str, Any] | None = {"question": question}
    for _ in range(RESUMES + 1):
        try:
            app.invoke(payload, config, context=context)
            break
        except TTCError as exc:
            failures.append(type(exc).__name__)
            checkpointed.extend(s for s in app.get_state(config).values.get("steps", []) if s not in checkpointed)
            payload = None  # resume from the last checkpoint
    values = app.get_state(config).values
    steps, ledger = values.get("steps", []), values.get("ttc_ledger")
    # The store's account also holds what failed attempts were charged (a node that raised
    # returned no ledger update): the spend that must stay within the budget.
    spent = POOL.spend(("thread", thread, budget.digest))
    exhausted = bool(ledger and ledger.exhausted)
    done = bool(values.get("messages")) or exhausted
    return {
        "completed": done and not exhausted,
        "ended_by_budget": exhausted,
        "failures": failures,
        "lost": sum(1 for s in checkpointed if s not in steps),
        "steps": len(steps),
        "two_stage_steps": sum(st["choice"] == TWO_STAGE for st in steps),
        "ledger_tokens": ledger.tokens if ledger else 0,
        "ledger_seconds": ledger.seconds if ledger else 0.0,
        "store_tokens": spent.tokens,
        "store_seconds": spent.seconds,
        "violation": spent.tokens > MAX_TOKENS or bool(ledger and ledger.tokens > MAX_TOKENS),
    }


def faults(server: VLLMServer, workflows: int, rate: float, concurrency: int) -> dict[str, Any]:
    from langgraph.checkpoint.memory import InMemorySaver

    with FaultProxy(server.url, kinds=FAULTS, rate=rate, seed=0, retry_after=1, stall_seconds=STALL) as proxy:
        backend = CountingBackend(proxy.url + "/v1", "smollm2", timeout=TIMEOUT, max_retries=3)
        app = make_graph(TTCNode(TTCEngine(backend, two_stage_bundle())), InMemorySaver())
        # Tokens only: a seconds budget's per-call deadlines come from the bundle's latency model,
        # profiled on transformers without load, and a busy server misses them (not a fault).
        budget = WorkflowBudget(max_tokens=MAX_TOKENS, scope="thread")
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            rows = list(
                pool.map(
                    lambda iq: run_workflow(app, iq[1], f"w{iq[0]}", budget, TWO_STAGE if iq[0] % 2 else None),
                    enumerate(questions(workflows)),
                )
            )
        wall = time.perf_counter() - started
        injected = proxy.faults()
        requests = sum(1 for h in proxy.log if h.path.startswith("/v1/"))
    retried = sorted(s for s in backend.retry_seconds if s > 0)
    return {
        "workflows": workflows,
        "fault_rate": rate,
        "generation_requests": requests,
        "faults_injected": {k: injected.get(k, 0) for k in FAULTS},
        "workflows_completed": sum(r["completed"] for r in rows),
        "workflows_ended_by_budget": sum(r["ended_by_budget"] for r in rows),
        "workflows_failed": sum(not (r["completed"] or r["ended_by_budget"]) for r in rows),
        "resumes": sum(len(r["failures"]) for r in rows),
        "errors_reaching_the_graph": dict(Counter(f for r in rows for f in r["failures"])),
        "budget_violations": sum(r["violation"] for r in rows),
        "work_lost": sum(r["lost"] for r in rows),
        "steps": sum(r["steps"] for r in rows),
        "two_stage_steps": sum(r["two_stage_steps"] for r in rows),
        "calls_answered": len(backend.retry_seconds),
        "calls_retried": len(retried),
        "retry_seconds_p50": round(float(np.percentile(retried, 50)), 3) if retried else 0.0,
        "retry_seconds_p99": round(float(np.percentile(retried, 99)), 3) if retried else 0.0,
        "max_ledger_tokens": max(r["ledger_tokens"] for r in rows),
        "max_ledger_seconds": round(max(r["ledger_seconds"] for r in rows), 2),
        "max_charged_tokens": max(r["store_tokens"] for r in rows),
        "max_charged_seconds": round(max(r["store_seconds"] for r in rows), 2),
        "wall_seconds": round(wall, 1),
    }


def load(server: VLLMServer, threads: int, rounds: int) -> dict[str, Any]:
    """The same greedy requests from ``threads`` threads, through graph threads with `TTCNode`
    and straight through the backend, interleaved ``rounds`` times."""
    backend = OpenAIBackend(server.v1, "smollm2", timeout=120, max_retries=0)
    probes = ProbeBundle.load(SHIPPED_PROBES)
    app = make_graph(TTCNode(TTCEngine(backend, probes)))
    qs = questions(threads, seed=1)
    budgets = [WorkflowBudget(max_tokens=400 + 25 * i) for i in range(threads)]
    tokens = int(probes.menu.defaults["max_tokens"])  # what greedy generates through the node

    def direct(i: int) -> int:
        from ttc_agent.demo import numbers

        a, b, c = numbers(qs[i])
        n = 0
        for left, right in ((a, b), (a + b, c)):  # the same two questions the graph asks
            n += 1
            backend.generate([{"role": "user", "content": f"What is {left} + {right}?"}], max_tokens=tokens)
        return n

    def through_node(i: int) -> dict[str, Any]:
        context = TTCContext(budget=budgets[i], strategy="greedy")
        out = app.invoke({"question": qs[i]}, context=context)
        own = sum(s["tokens"] for s in out["steps"])
        before = [s["budget"]["before"]["tokens_left"] for s in out["steps"]]
        chained = before == [
            budgets[i].max_tokens - sum(s["tokens"] for s in out["steps"][:k]) for k in range(len(before))
        ]
        return {"calls": len(out["steps"]), "crosstalk": out["ttc_ledger"].tokens != own or not chained,
                "overrun": out["ttc_ledger"].tokens > budgets[i].max_tokens}  # fmt: skip

    direct_rps, node_rps, checks = [], [], []
    for _ in range(rounds):
        for kind in ("direct", "node"):
            started = time.perf_counter()
            with ThreadPoolExecutor(threads) as pool:
                if kind == "direct":
                    calls = sum(pool.map(direct, range(threads)))
                    direct_rps.append(calls / (time.perf_counter() - started))
                else:
                    rows = list(pool.map(through_node, range(threads)))
                    node_rps.append(sum(r["calls"] for r in rows) / (time.perf_counter() - started))
                    checks.extend(rows)
    return {
        "threads": threads,
        "rounds": rounds,
        "max_tokens_per_call": tokens,
        "requests_per_s_direct": round(statistics.median(direct_rps), 3),
        "requests_per_s_node": round(statistics.median(node_rps), 3),
        "node_over_direct": round(statistics.median(node_rps) / statistics.median(direct_rps), 3),
        "threads_with_crosstalk": sum(r["crosstalk"] for r in checks),
        "threads_over_budget": sum(r["overrun"] for r in checks),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", type=int, default=32, help="workflows run through the fault proxy")
    parser.add_argument("--rate", type=float, default=0.3, help="share of generation requests given a fault")
    parser.add_argument("--concurrency", type=int, default=4, help="workflows running at once under faults")
    parser.add_argument("--threads", type=int, default=32, help="graph threads at once in the load test")
    parser.add_argument("--rounds", type=int, default=3, help="load rounds (direct and node interleaved)")
    args = parser.parse_args()
    console = Console()
    with VLLMServer("smollm2-135m", served_name="smollm2") as server:
        with console.status(f"{args.workflows} workflows under faults..."):
            f = faults(server, args.workflows, args.rate, args.concurrency)
        with console.status(f"{args.threads} graph threads at once..."):
            ld = load(server, args.threads, args.rounds)
    table = Table(title=f"Reliability: {args.workflows} workflows, {args.rate:.0%} of requests faulted")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for kind, n in f["faults_injected"].items():
        table.add_row(f"faults injected: {kind}", str(n))
    for key in ("workflows_completed", "workflows_ended_by_budget", "workflows_failed", "resumes",
                "budget_violations", "work_lost", "calls_retried", "two_stage_steps", "steps"):  # fmt: skip
        table.add_row(key.replace("_", " "), str(f[key]))
    table.add_row(
        "most charged to one workflow (tokens / s)", f"{f['max_charged_tokens']} / {f['max_charged_seconds']:.1f}"
    )
    table.add_row("retry latency p50 / p99 (s)", f"{f['retry_seconds_p50']:.2f} / {f['retry_seconds_p99']:.2f}")
    table.add_row(f"requests/s, {ld['threads']} threads, direct", f"{ld['requests_per_s_direct']:.2f}")
    table.add_row(f"requests/s, {ld['threads']} threads, through TTCNode", f"{ld['requests_per_s_node']:.2f}")
    table.add_row(
        "threads with crosstalk / over budget", f"{ld['threads_with_crosstalk']} / {ld['threads_over_budget']}"
    )
    console.print(table)
    data = {"model": "SmolLM2-135M-Instruct via vllm serve (float32)", "faults": f, "load": ld}
    console.print(f"wrote {write_results('reliability', data)}")
    refresh("reliability")


def _markdown(f: dict[str, Any], ld: dict[str, Any]) -> str:
    inj = ", ".join(f"{k} {v}" for k, v in f["faults_injected"].items())
    return "\n".join(
        [
            "### Reliability (`benchmarks/reliability.py`)",
            "",
            f"{f['workflows']} demo workflows (3-term sums, budget {MAX_TOKENS} tokens each) "
            f"through the fault proxy at {f['fault_rate']:.0%} of {f['generation_requests']} generation requests "
            f"({inj}); then {ld['threads']} graph threads at once.",
            "",
            "| measure | value |",
            "|---|---|",
            f"| workflows completed / ended by budget / failed | {f['workflows_completed']} / "
            f"{f['workflows_ended_by_budget']} / {f['workflows_failed']} |",
            f"| resumes from checkpoint | {f['resumes']} |",
            *(
                [f"| steps run by {TWO_STAGE} (on the menu) / all steps | {f['two_stage_steps']} / {f['steps']} |"]
                if "two_stage_steps" in f
                else []
            ),
            f"| budget violations | {f['budget_violations']} (most charged to one workflow: "
            f"{f['max_charged_tokens']} tokens, {f['max_charged_seconds']:.1f} s) |",
            f"| work lost | {f['work_lost']} |",
            f"| calls saved by retries; added latency p50 / p99 | {f['calls_retried']}; "
            f"{f['retry_seconds_p50']:.2f} s / {f['retry_seconds_p99']:.2f} s |",
            f"| requests/s, {ld['threads']} threads: direct / through TTCNode | {ld['requests_per_s_direct']:.2f} / "
            f"{ld['requests_per_s_node']:.2f} ({ld['node_over_direct']:.2f}x) |",
            f"| threads with crosstalk / over budget | {ld['threads_with_crosstalk']} / {ld['threads_over_budget']} |",
        ]
    )


def doc_blocks(results: dict[str, Any]) -> dict[str, str]:
    """The docs' block of saved reliability results."""
    return {"reliability": _markdown(results["faults"], results["load"])}


if __name__ == "__main__":
    main()
