"""Faults between ttc-agent and a real `vllm serve`: each kind is retried within the call's
deadline or raised as a typed error, and a node falls back to a cheaper strategy, booking the
failed attempt on the ledger."""

from __future__ import annotations

import time

import pytest
from conftest import CHAT
from langchain_core.messages import HumanMessage

from benchmarks.faults import FAULTS, FaultProxy
from ttc_agent.backends import OpenAIBackend
from ttc_agent.errors import BackendError, BackendResponseError, InvalidRequestError


def test_the_proxy_checks_its_settings():
    with pytest.raises(InvalidRequestError, match="teapot"):
        FaultProxy("http://127.0.0.1:9", kinds=("teapot",))
    with pytest.raises(InvalidRequestError, match="rate"):
        FaultProxy("http://127.0.0.1:9", rate=1.5)


@pytest.mark.slow
@pytest.mark.parametrize("kind", FAULTS)
def test_each_fault_is_retried_or_raised_typed(vllm_server, kind):
    root = vllm_server.removesuffix("/v1")
    with FaultProxy(root, script=(kind,), stall_seconds=8) as proxy:
        backend = OpenAIBackend(proxy.url + "/v1", "smollm2", timeout=4, max_retries=2)
        started = time.monotonic()
        if kind == "malformed":  # a server answering garbage is not retried
            with pytest.raises(BackendResponseError):
                backend.generate(CHAT, max_tokens=8)
        else:
            assert backend.generate(CHAT, max_tokens=8).text
        assert proxy.faults()[kind] == 1 and time.monotonic() - started < 40


@pytest.mark.slow
def test_no_retry_starts_that_cannot_end_before_the_deadline(vllm_server):
    with FaultProxy(vllm_server.removesuffix("/v1"), script=("429",), retry_after=5) as proxy:
        backend = OpenAIBackend(proxy.url + "/v1", "smollm2", timeout=5, max_retries=3)
        started = time.monotonic()
        with pytest.raises(BackendError):
            backend.generate(CHAT, max_tokens=8, max_seconds=2)
        assert time.monotonic() - started < 2 and len(proxy.log) == 1


@pytest.mark.slow
def test_a_node_behind_faults_falls_back_and_books_every_attempt(vllm_server):
    from fakes import bundle_for
    from langgraph.graph import START, MessagesState, StateGraph

    from ttc_agent.budgets import BudgetState, WorkflowBudget
    from ttc_agent.nodes import TTCContext, TTCEngine, TTCNode

    class State(MessagesState, BudgetState):
        pass

    with FaultProxy(vllm_server.removesuffix("/v1"), script=("malformed",)) as proxy:
        # Probes that choose best-of-4 for a three-digit sum when compute is (almost) free.
        engine = TTCEngine(OpenAIBackend(proxy.url + "/v1", "smollm2", timeout=30), bundle_for(None))
        g = StateGraph(State, context_schema=TTCContext)
        g.add_node("solve", TTCNode(engine))
        g.add_edge(START, "solve")
        out = g.compile().invoke(
            # A budget this large leaves compute almost free: the first choice is a dear strategy.
            {"messages": [HumanMessage("What is 345 + 678?")]},
            context=TTCContext(budget=WorkflowBudget(max_tokens=100_000)),
        )
    reply, ledger = out["messages"][-1], out["ttc_ledger"]
    assert proxy.faults()["malformed"] == 1 and reply.content
    assert reply.response_metadata["ttc"]["choice"] == "greedy", "best-of-4 failed: the cheaper greedy answered"
    assert ledger.calls == 2 and ledger.tokens > reply.usage_metadata["total_tokens"]
