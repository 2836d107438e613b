"""32 graph threads at once against one real `vllm serve`, each with its own budget: no
crosstalk between ledgers and no overrun (requests/s with and without the node are measured by
benchmarks/reliability.py, not here)."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from fakes import bundle_for
from langchain_core.messages import HumanMessage
from langgraph.graph import START, MessagesState, StateGraph

from ttc_agent.backends import OpenAIBackend
from ttc_agent.budgets import BudgetState, WorkflowBudget
from ttc_agent.nodes import TTCContext, TTCEngine, TTCNode

pytestmark = pytest.mark.slow


class State(MessagesState, BudgetState):
    pass


def test_32_threads_keep_their_own_ledgers_and_budgets(vllm_server):
    engine = TTCEngine(OpenAIBackend(vllm_server, "smollm2", timeout=120), bundle_for(None))
    graph = StateGraph(State, context_schema=TTCContext)
    graph.add_node("solve", TTCNode(engine))
    graph.add_edge(START, "solve")
    app = graph.compile()
    # Every fourth thread's budget cannot afford one call: it must end, not overrun.
    budgets = [WorkflowBudget(max_tokens=12 if i % 4 == 0 else 300 + 7 * i) for i in range(32)]

    def run(i: int) -> dict:
        question = HumanMessage(f"What is {100 + i} + {i}?")
        return app.invoke({"messages": [question]}, context=TTCContext(budget=budgets[i], strategy="greedy"))

    with ThreadPoolExecutor(32) as pool:
        outs = list(pool.map(run, range(32)))
    for i, (out, budget) in enumerate(zip(outs, budgets, strict=True)):
        reply, ledger = out["messages"][-1], out["ttc_ledger"]
        assert f"{100 + i} + {i}" in out["messages"][0].content
        if i % 4 == 0:
            assert ledger.exhausted == "tokens" and ledger.tokens == 0, f"thread {i} could not afford a call"
            continue
        record = reply.response_metadata["ttc"]
        assert record["budget"]["before"]["tokens_left"] == budget.max_tokens, f"thread {i} saw only its own budget"
        assert ledger.tokens == reply.usage_metadata["total_tokens"] == record["actual"]["total_tokens"]
        assert ledger.calls == 1 and ledger.tokens <= budget.max_tokens
