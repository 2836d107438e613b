"""Each decision is visible where people look: a LangSmith run, an OpenTelemetry span, Python
logging and LangGraph's custom stream, for every face."""

from __future__ import annotations

import logging
from typing import NamedTuple

import pytest
from fakes import ScriptedBackend, bundle_for, texts
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from langchain_core.tracers.langchain import LangChainTracer
from langchain_core.tracers.schemas import Run
from langgraph.graph import START, MessagesState, StateGraph
from langsmith import Client

from ttc_agent.nodes import TTCChatModel, TTCEngine, TTCMiddleware, TTCNode

Q = [HumanMessage("What is 345 + 678?")]


@pytest.fixture(scope="module", autouse=True)
def spans(otel_spans):
    """The session's in-memory span exporter (tests/conftest.py), emptied around this module."""
    global SPANS
    SPANS = otel_spans
    SPANS.clear()
    yield
    SPANS.clear()


class CapturingTracer(LangChainTracer):
    """LangSmith's own tracer, keeping what it would send (the run when it ends) instead of posting."""

    sent: list[Sent] = []  # shared with the copies the callback manager makes

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("project_name", "test")
        kwargs.setdefault("client", Client(api_url="http://127.0.0.1:9", api_key="test"))  # never reached
        super().__init__(**kwargs)

    def _persist_run_single(self, run: Run) -> None:
        pass

    def _update_run_single(self, run: Run) -> None:
        self.sent.append(Sent(run.run_type, dict(run.extra.get("metadata", {})), list(run.tags or [])))


class Sent(NamedTuple):
    run_type: str
    metadata: dict[str, object]
    tags: list[str]


def engine() -> TTCEngine:
    return TTCEngine(ScriptedBackend(texts("345 + 678 = 1023")), bundle_for(None), name="solver")


def test_chat_model_decision_reaches_langsmith_otel_logging():
    model = TTCChatModel(engine=engine())
    tracer = CapturingTracer()
    CapturingTracer.sent.clear()
    SPANS.clear()
    with _capture("ttc_agent") as logs:
        reply = model.invoke(Q, config={"callbacks": [tracer]}, ttc={"lambda_tokens": 1.0})
    (run,) = [r for r in tracer.sent if r.run_type == "llm"]
    metadata = run.metadata
    assert metadata["ttc_strategy"] == "greedy" == reply.response_metadata["ttc"]["choice"]
    assert metadata["ls_provider"] == "ttc-agent" and "ttc:greedy" in run.tags
    assert metadata["usage_metadata"]["output_tokens"] == reply.usage_metadata["output_tokens"] == 5

    (span,) = SPANS.get_finished_spans()
    assert span.name == "chat scripted"
    assert span.attributes["gen_ai.operation.name"] == "chat"
    assert span.attributes["gen_ai.usage.input_tokens"] == 10 and span.attributes["gen_ai.usage.output_tokens"] == 5
    assert span.attributes["ttc.strategy"] == "greedy" and span.attributes["ttc.node"] == "solver"

    (line,) = logs
    assert "solver: chose greedy" in line.getMessage() and line.ttc["actual"]["total_tokens"] == 15


def test_node_decision_reaches_the_custom_stream_and_a_chat_model_run():
    node = TTCNode(engine())
    g = StateGraph(MessagesState)
    g.add_node("solve", node)
    g.add_edge(START, "solve")
    tracer = CapturingTracer()
    CapturingTracer.sent.clear()
    SPANS.clear()
    chunks = list(
        g.compile().stream(
            {"messages": Q},
            {"callbacks": [tracer], "configurable": {"ttc": {"lambda_tokens": 1.0}}},
            stream_mode="custom",
        )
    )
    assert [c["ttc_decision"]["choice"] for c in chunks] == ["greedy"]
    (run,) = [r for r in tracer.sent if r.run_type == "llm"]
    assert run.metadata["ttc_strategy"] == "greedy"
    assert [s.attributes["ttc.strategy"] for s in SPANS.get_finished_spans()] == ["greedy"]


def test_respond_inside_a_custom_node_streams_its_decision():
    node = TTCNode(engine())

    def solve(state):
        return node.respond(state["messages"], state).update

    g = StateGraph(MessagesState)
    g.add_node("solve", solve)
    g.add_edge(START, "solve")
    chunks = list(g.compile().stream({"messages": Q}, stream_mode="custom"))
    assert len(chunks) == 1 and chunks[0]["ttc_decision"]["node"] == "solver"


def test_middleware_decision_reaches_the_custom_stream():
    e = engine()
    agent = create_agent(TTCChatModel(engine=e), middleware=[TTCMiddleware(e)])
    chunks = list(agent.stream({"messages": Q}, stream_mode="custom"))
    assert [c["ttc_decision"]["node"] for c in chunks] == ["solver"]


class _capture:
    """Records the ``ttc_agent`` logger's INFO lines."""

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)
        self.records: list[logging.LogRecord] = []
        self.handler = logging.Handler(logging.INFO)
        self.handler.emit = self.records.append  # type: ignore[method-assign]

    def __enter__(self) -> list[logging.LogRecord]:
        self.level = self.logger.level
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self.handler)
        return self.records

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.level)
