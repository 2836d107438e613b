"""A multi-step math agent: decompose a chain of sums, solve each step with ttc-agent, combine.

The graph is `ttc_agent.demo.make_graph` (read it there: about 80 lines of plain LangGraph).
This script runs it on the embedded model with a probe bundle, under per-run prices and an
optional workflow budget, and traces every decision:

    python examples/multistep_math.py "What is 12 + 7 + 30 + 4?" --max-tokens 1500
    ttc-agent report multistep.jsonl
"""

from __future__ import annotations

import argparse

from ttc_agent.budgets import WorkflowBudget
from ttc_agent.demo import SHIPPED_PROBES, MathState, make_graph
from ttc_agent.nodes import TTCContext, TTCEngine, TTCNode

__all__ = ["MathState", "make_graph"]


def main() -> None:
    from ttc_agent.backends import TransformersBackend
    from ttc_agent.probes import ProbeBundle

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("question", nargs="?", default="What is 12 + 7 + 30 + 4?")
    parser.add_argument("--probes", default=str(SHIPPED_PROBES), help="probe bundle folder (default: the shipped one)")
    parser.add_argument("--lambda-tokens", type=float, default=1e-3)
    parser.add_argument("--max-tokens", type=int, help="workflow token budget (all steps together)")
    parser.add_argument("--max-seconds", type=float, help="workflow seconds budget (all steps together)")
    parser.add_argument("--trace", default="multistep.jsonl", help="decision trace (JSONL) for `ttc-agent report`")
    args = parser.parse_args()
    backend = TransformersBackend()
    node = TTCNode(
        TTCEngine(backend, ProbeBundle.load(args.probes, fingerprint=backend.fingerprint()), trace=args.trace)
    )
    budget = (
        WorkflowBudget(max_tokens=args.max_tokens, max_seconds=args.max_seconds)
        if args.max_tokens or args.max_seconds
        else None
    )
    out = make_graph(node).invoke(
        {"question": args.question}, context=TTCContext(lambda_tokens=args.lambda_tokens, budget=budget)
    )
    print(out["messages"][-1].content)
    print(f"decisions traced to {args.trace}; see them with: ttc-agent report {args.trace}")


if __name__ == "__main__":
    main()
