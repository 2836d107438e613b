"""A multi-step math agent: decompose a chain of sums, solve each step with ttc-agent, combine.

The graph is `ttc_agent.demo.make_graph` (read it there: about 80 lines of plain LangGraph).
This script runs it on the reference model (``--model smollm2-135m`` for the fast one) with the
probe bundle shipped for that model, under per-run prices and an optional workflow budget, and
traces every decision:

    python examples/multistep_math.py "What is 12 + 7 + 30 + 4?" --max-tokens 1500
    ttc-agent report multistep.jsonl
"""

from __future__ import annotations

import argparse

from ttc_agent.budgets import WorkflowBudget
from ttc_agent.demo import MathState, make_graph, shipped_probes
from ttc_agent.nodes import TTCContext, TTCEngine, TTCNode

__all__ = ["MathState", "make_graph"]


def main() -> None:
    from ttc_agent.backends import TransformersBackend
    from ttc_agent.probes import ProbeBundle

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("question", nargs="?", default="What is 12 + 7 + 30 + 4?")
    parser.add_argument("--model", default="qwen2.5-coder-0.5b", help="named model or model folder")
    parser.add_argument("--probes", help="probe bundle folder (default: the one shipped for --model)")
    parser.add_argument("--lambda-tokens", type=float, default=1e-3)
    parser.add_argument("--max-tokens", type=int, help="workflow token budget (all steps together)")
    parser.add_argument("--max-seconds", type=float, help="workflow seconds budget (all steps together)")
    parser.add_argument("--trace", default="multistep.jsonl", help="decision trace (JSONL) for `ttc-agent report`")
    args = parser.parse_args()
    backend = TransformersBackend(args.model)
    probes = (
        shipped_probes(backend)
        if args.probes is None
        else ProbeBundle.load(args.probes, fingerprint=backend.fingerprint())
    )
    node = TTCNode(TTCEngine(backend, probes, trace=args.trace))
    budget = (
        WorkflowBudget(max_tokens=args.max_tokens, max_seconds=args.max_seconds)
        if args.max_tokens or args.max_seconds
        else None
    )
    out = make_graph(node).invoke(
        {"question": args.question},
        context=TTCContext(lambda_tokens=args.lambda_tokens, budget=budget, answer_scope="first_result"),
    )
    print(out["messages"][-1].content)
    print(f"decisions traced to {args.trace}; see them with: ttc-agent report {args.trace}")


if __name__ == "__main__":
    main()
