"""docs/budgets.md's rule for a run's price under a budget (the dearer of the run's and the
pacer's) holds in every face that applies a budget: node (tests/evaluation/test_simulate.py),
`create_agent` middleware (which also budgets a `TTCChatModel` agent) and `ttc-agent serve`."""

from __future__ import annotations

from fakes import ScriptedBackend, bundle_for, texts
from fastapi.testclient import TestClient
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from langgraph.graph import START, MessagesState, StateGraph

from ttc_agent.budgets import BudgetState, ReservationPool, WorkflowBudget
from ttc_agent.nodes import TTCChatModel, TTCContext, TTCEngine, TTCMiddleware
from ttc_agent.server import ChatService, create_app

PRICE = 1e-3
Q = [HumanMessage("What is 345 + 678?")]


def engine(**kwargs: object) -> TTCEngine:
    return TTCEngine(ScriptedBackend(texts("= 1023", tokens=8)), bundle_for(None), **kwargs)


def test_a_chat_model_in_a_graph_takes_the_runs_price_and_leaves_the_budget_to_the_middleware():
    """As docs/nodes.md says, a chat model applies no workflow budget by itself (the budget needs
    the graph state's ledger, which a node or the middleware writes); the run's price reaches it."""
    model = TTCChatModel(engine=engine())

    class State(MessagesState, BudgetState):
        pass

    g = StateGraph(State, context_schema=TTCContext)
    g.add_node("ask", lambda state: {"messages": [model.invoke(state["messages"])]})
    g.add_edge(START, "ask")
    out = g.compile().invoke({"messages": Q}, context=TTCContext(lambda_tokens=PRICE, budget=WorkflowBudget(2000)))
    ttc = out["messages"][-1].response_metadata["ttc"]
    assert ttc["limits"]["lambda_tokens"] == PRICE and "budget" not in ttc


def test_middleware_under_a_budget_keeps_the_runs_price():
    e = engine()
    agent = create_agent(TTCChatModel(engine=e), middleware=[TTCMiddleware(e)], context_schema=TTCContext)
    out = agent.invoke({"messages": Q}, context=TTCContext(lambda_tokens=PRICE, budget=WorkflowBudget(2000)))
    ttc = out["messages"][-1].response_metadata["ttc"]
    assert ttc["limits"]["lambda_tokens"] >= PRICE and "budget" in ttc


def test_serve_under_a_session_budget_keeps_the_requests_price():
    store = ReservationPool()
    client = TestClient(create_app(ChatService(engine(pool=store), store, model_name="ttc")))
    assert client.post("/v1/sessions", json={"id": "s1", "max_tokens": 2000}).status_code == 201
    body = {"model": "ttc", "messages": [{"role": "user", "content": "What is 345 + 678?"}],
            "ttc": {"lambda_tokens": PRICE}}  # fmt: skip
    reply = client.post("/v1/chat/completions", json=body, headers={"x-ttc-session": "s1"})
    assert reply.status_code == 200, reply.text
    ttc = reply.json()["ttc"]
    assert ttc["limits"]["lambda_tokens"] >= PRICE and ttc["session"]["id"] == "s1"
