"""When the chosen strategy's backend call fails, the next cheaper strategy that fits answers,
and every attempt, the failed one included, is booked on the ledger."""

from __future__ import annotations

import pytest
from fakes import ScriptedBackend, bundle_for
from langchain_core.messages import HumanMessage
from langgraph.graph import START, MessagesState, StateGraph

from ttc_agent.backends.base import Completion
from ttc_agent.budgets import BudgetState, WorkflowBudget
from ttc_agent.errors import BackendUnavailableError
from ttc_agent.nodes import TTCContext, TTCEngine, TTCNode

Q = [HumanMessage("What is 345 + 678?")]


def sampling_fails(always: bool = False) -> ScriptedBackend:
    """A server that fails every request for several samples (or every request at all)."""

    def make(prompt, params, i):
        if always or params.n > 1:
            raise BackendUnavailableError("the server dropped the connection")
        return Completion("345 + 678 = 1023", "stop", 8, (-0.2,) * 8 if params.logprobs else None)

    return ScriptedBackend(make)


class State(MessagesState, BudgetState):
    pass


def graph(engine: TTCEngine):
    g = StateGraph(State, context_schema=TTCContext)
    g.add_node("solve", TTCNode(engine))
    g.add_edge(START, "solve")
    return g.compile()


@pytest.mark.parametrize("async_", [False, True])
async def test_a_failed_strategy_falls_back_to_a_cheaper_one_and_both_are_booked(async_):
    engine = TTCEngine(sampling_fails(), bundle_for(None))
    app = graph(engine)
    inputs, context = {"messages": Q}, TTCContext(budget=WorkflowBudget(max_tokens=5000))
    out = await app.ainvoke(inputs, context=context) if async_ else app.invoke(inputs, context=context)
    reply = out["messages"][-1]
    assert reply.content == "345 + 678 = 1023" and reply.response_metadata["ttc"]["choice"] == "greedy"
    ledger = out["ttc_ledger"]
    assert ledger.calls == 2, "the failed attempt counts as a call"
    assert ledger.tokens > reply.usage_metadata["total_tokens"], "its reserved tokens are charged too"


def test_when_nothing_cheaper_is_left_the_backend_error_reaches_the_graph():
    app = graph(TTCEngine(sampling_fails(always=True), bundle_for(None)))
    with pytest.raises(BackendUnavailableError, match="dropped the connection"):
        app.invoke({"messages": Q}, context=TTCContext(budget=WorkflowBudget(max_tokens=5000)))


def test_a_forced_strategy_does_not_fall_back():
    app = graph(TTCEngine(sampling_fails(), bundle_for(None)))
    with pytest.raises(BackendUnavailableError):
        app.invoke({"messages": Q}, context=TTCContext(strategy="best_of_n(4, select=majority)"))
