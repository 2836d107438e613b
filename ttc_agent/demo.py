"""The demo workflow: a multi-step math agent that decomposes a chain of sums and solves each
step with ttc-agent, under per-run prices and an optional workflow budget.

"What is 12 + 7 + 30 + 4?" becomes the steps "What is 12 + 7?", "What is <that> + 30?",
"What is <that> + 4?". Each step is one LLM call whose strategy (greedy, best-of-N, beam search)
the policy picks; every decision is traced. Under a workflow budget
(``TTCContext(budget=WorkflowBudget(...))``) the steps share one allowance, kept in the state's
ledger; when it runs out the graph stops and says which limit was reached. ``ttc-agent demo``
runs it on the reference model (or ``--model smollm2-135m``) with the probe bundle shipped in
the package for that model (`shipped_probes`).
"""

from __future__ import annotations

import json
import operator
import re
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from typing_extensions import TypedDict

from ttc_agent.answers import extract_answer
from ttc_agent.backends.fingerprint import same_model
from ttc_agent.backends.models import REFERENCE_MODEL, TEST_MODEL
from ttc_agent.budgets import BudgetState, budget_exhausted
from ttc_agent.nodes import TTCContext, TTCNode

if TYPE_CHECKING:
    from ttc_agent.backends.base import Backend
    from ttc_agent.probes import ProbeBundle

_DATA = Path(str(files("ttc_agent") / "data"))
#: The probe bundles shipped in the package, by model name: the reference model's fitted on its
#: GSM8K train and arithmetic trace pools, the embedded model's on its arithmetic traces
#: (docs/probes.md gives the commands that reproduce them).
SHIPPED_BUNDLES: dict[str, Path] = {
    TEST_MODEL: _DATA / "probes",
    REFERENCE_MODEL: _DATA / f"probes-{REFERENCE_MODEL}",
}
#: The embedded model's bundle.
SHIPPED_PROBES = SHIPPED_BUNDLES[TEST_MODEL]


def shipped_probes(backend: Backend) -> ProbeBundle:
    """The shipped probe bundle fitted on ``backend``'s model (matched by its weights'
    fingerprint); `ProbeMismatchError` naming the models bundles are shipped for when none is."""
    from ttc_agent.probes import ProbeBundle, ProbeMismatchError

    fingerprint = backend.fingerprint()
    for folder in SHIPPED_BUNDLES.values():
        if not (folder / "bundle.json").is_file():
            continue
        made_on = json.loads((folder / "bundle.json").read_text()).get("fingerprint") or {}
        if same_model(made_on, fingerprint):
            return ProbeBundle.load(folder, fingerprint=fingerprint)
    raise ProbeMismatchError(
        f"no probe bundle is shipped for model {fingerprint.get('model')!r} (weights {fingerprint.get('weights')}); "
        f"bundles are shipped for {sorted(SHIPPED_BUNDLES)}: fit one on your model's traces with "
        "`ttc-agent collect` and `ttc-agent train`"
    )


_TERM = re.compile(r"-?\d+")


def numbers(text: str) -> list[int]:
    """The integers written in ``text``, in order (the terms of a sum)."""
    return [int(t) for t in _TERM.findall(text)]


class MathState(BudgetState, TypedDict, total=False):
    """The question, the numbers still to add, each step's answer and the final reply (and,
    from `BudgetState`, the workflow budget's ledger)."""

    question: str
    terms: list[int]
    steps: Annotated[list[dict[str, Any]], operator.add]
    messages: Annotated[list[AnyMessage], operator.add]


def decompose(state: MathState) -> MathState:
    """Split "What is a + b + c ...?" into its terms (at least two)."""
    terms = numbers(state["question"])
    if len(terms) < 2:
        raise ValueError(f"expected a sum of at least two numbers, got {state['question']!r}")
    return {"terms": terms}


def make_graph(
    node: TTCNode, checkpointer: BaseCheckpointSaver[Any] | None = None
) -> CompiledStateGraph[MathState, TTCContext, MathState, MathState]:
    """The compiled graph: decompose, then one ttc-agent call per addition, then combine
    (checkpointed by ``checkpointer`` when given, so a killed run resumes where it stopped)."""

    def solve(state: MathState) -> dict[str, Any]:
        done = state.get("steps", [])
        left = int(done[-1]["answer"]) if done else state["terms"][0]
        right = state["terms"][len(done) + 1]
        question = f"What is {left} + {right}?"
        reply = node.respond([HumanMessage(question)], state)
        ledger = {k: v for k, v in reply.update.items() if k != "messages"}
        if "exhausted" in reply.record:  # the budget cannot afford this step
            return {**ledger, "messages": [reply.message]}
        record = reply.record
        chosen = next(c for c in record["candidates"] if c["strategy"] == record["choice"])
        ood = record.get("ood")
        answer = extract_answer(reply.message.text, "first_result")
        # A step whose reply states no number keeps the running total, so later steps can go on.
        value = answer if answer is not None and _TERM.fullmatch(answer.replace(",", "")) else str(left)
        return {
            "steps": [
                {
                    "question": question,
                    "answer": value.replace(",", ""),
                    "choice": record["choice"],
                    "tokens": record["actual"]["total_tokens"],
                    "seconds": record["actual"]["seconds"],
                    "predicted_accuracy": chosen["accuracy"],
                    "predicted_tokens": chosen["tokens"],
                    "predicted_seconds": chosen["seconds"],
                    "budget": record.get("budget"),
                    "out_of_distribution": bool(ood is not None and ood["novel"]),
                }
            ],
            **ledger,
        }

    def more(state: MathState) -> str:
        if budget_exhausted(state):
            return END
        return "solve" if len(state.get("steps", [])) < len(state["terms"]) - 1 else "combine"

    def combine(state: MathState) -> MathState:
        steps = state["steps"]
        lines = [f"{s['question']} {s['answer']}" for s in steps]
        return {"messages": [AIMessage("\n".join(lines) + f"\nThe answer is {steps[-1]['answer']}.")]}

    graph = StateGraph(MathState, context_schema=TTCContext)
    graph.add_node("decompose", decompose)
    graph.add_node("solve", solve)
    graph.add_node("combine", combine)
    graph.add_edge(START, "decompose")
    graph.add_edge("decompose", "solve")
    graph.add_conditional_edges("solve", more, ["solve", "combine", END])
    graph.add_edge("combine", END)
    return graph.compile(checkpointer=checkpointer)
