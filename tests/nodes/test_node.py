"""TTCNode inside real LangGraph graphs on the embedded model."""

import asyncio
import json

import pytest
from fakes import ScriptedBackend, bundle_for, texts
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tracers.context import collect_runs
from langgraph.graph import START, MessagesState, StateGraph

from ttc_agent.errors import InvalidRequestError
from ttc_agent.nodes import TTCEngine, TTCNode
from ttc_agent.probes import ProbeMismatchError
from ttc_agent.strategies.menu import Menu

MENU = Menu(("greedy", "best_of_n(4, select=majority)"), {"max_tokens": 24})
HARD = [HumanMessage("What is 345 + 678?")]


def graph(node, async_=False):
    g = StateGraph(MessagesState)
    g.add_node("solve", node)
    g.add_edge(START, "solve")
    return g.compile()


def chat_runs(runs):
    """Every chat-model run under the collected root runs."""
    found, todo = [], list(runs.traced_runs)
    while todo:
        run = todo.pop()
        found += [run] if run.run_type == "llm" else []
        todo += run.child_runs
    return found


def test_settings_are_checked_before_any_generation():
    backend = ScriptedBackend(texts("= 5"))
    node = TTCNode(TTCEngine(backend, bundle_for(None)))
    app = graph(node)
    with pytest.raises(InvalidRequestError, match="lamda_tokens"):
        app.invoke({"messages": HARD}, {"configurable": {"ttc": {"lamda_tokens": 1}}})
    with pytest.raises(InvalidRequestError, match="lambda_tokens"):
        app.invoke({"messages": HARD}, {"configurable": {"ttc": {"lambda_tokens": -1}}})
    with pytest.raises(InvalidRequestError, match=r"quantile=0.2: Input should be greater than or equal to 0.5"):
        app.invoke({"messages": HARD}, {"configurable": {"ttc": {"quantile": 0.2}}})
    for bad in ({"lambda_tokens": float("nan")}, {"max_call_tokens": True}, {"max_call_seconds": "30"}):
        with pytest.raises(InvalidRequestError, match=next(iter(bad))):
            app.invoke({"messages": HARD}, {"configurable": {"ttc": bad}})
    with pytest.raises(InvalidRequestError, match="no messages"):
        app.invoke({"messages": []})
    assert backend.calls == [], "nothing was generated"


def test_mismatched_bundle_is_refused_at_construction():
    backend = ScriptedBackend(texts("= 5"))
    with pytest.raises(ProbeMismatchError, match="menu"):
        TTCNode(TTCEngine(backend, bundle_for(None), menu=Menu(("greedy",))))
    backend.fingerprint = lambda: {"backend": "scripted", "weights": "abc"}
    with pytest.raises(ProbeMismatchError, match="model"):
        TTCNode(TTCEngine(backend, bundle_for({"weights": "xyz"})))


def test_target_mean_cost_calibrates_lambda():
    node = TTCNode(TTCEngine(ScriptedBackend(texts("= 5")), bundle_for(None)))
    cheap = node.limits({"configurable": {"ttc": {"target_mean_tokens": 60}}})
    rich = node.limits({"configurable": {"ttc": {"target_mean_tokens": 140}}})
    assert cheap.lambda_tokens > rich.lambda_tokens >= 0
    kept = node.limits({"configurable": {"ttc": {"target_mean_tokens": 60, "quantile": 0.75, "max_call_tokens": 300}}})
    assert (kept.lambda_tokens, kept.quantile, kept.max_call_tokens) == (cheap.lambda_tokens, 0.75, 300)
    with pytest.raises(InvalidRequestError, match="not both"):
        node.limits({"configurable": {"ttc": {"target_mean_tokens": 60, "target_mean_seconds": 1}}})


def test_answer_scope_sets_where_votes_read_the_answer():
    # Short answers a model chats on about: the first result is the answer, the last number is not.
    replies = texts("964 + 494 = 1458. In Python: print(964 + 494)", "The sum is 1458, not 1358.",
                    "It is 1358.", "964 + 494 = 1458, so 8 is the last digit")  # fmt: skip
    node = TTCNode(TTCEngine(ScriptedBackend(replies), bundle_for(None)))
    forced = {"strategy": "best_of_n(4, select=majority)"}
    first = graph(node).invoke(
        {"messages": HARD}, {"configurable": {"ttc": {**forced, "answer_scope": "first_result"}}}
    )
    last = graph(node).invoke({"messages": HARD}, {"configurable": {"ttc": forced}})
    assert first["messages"][-1].content.startswith("964 + 494 = 1458")  # 1458 has three votes
    assert last["messages"][-1].content == "The sum is 1458, not 1358."  # last numbers: 494, 1358 twice, 8
    with pytest.raises(InvalidRequestError, match="answer_scope"):
        graph(node).invoke({"messages": HARD}, {"configurable": {"ttc": {"answer_scope": "first"}}})


@pytest.mark.slow
def test_node_in_a_state_graph_on_the_embedded_model(tf_backend, tmp_path):
    node = TTCNode(TTCEngine(tf_backend, bundle_for(tf_backend.fingerprint()), trace=tmp_path / "trace.jsonl"))
    app = graph(node)
    with collect_runs() as runs:
        free = app.invoke({"messages": HARD})
    priced = app.invoke({"messages": HARD}, {"configurable": {"ttc": {"lambda_tokens": 1.0}}})
    reply, cheap = free["messages"][-1], priced["messages"][-1]
    assert isinstance(reply, AIMessage) and reply.content
    assert reply.response_metadata["ttc"]["choice"] == "best_of_n(4, select=majority)", (
        "free compute buys search on a hard sum"
    )
    assert cheap.response_metadata["ttc"]["choice"] == "greedy", "a high token price picks greedy"
    actual = reply.response_metadata["ttc"]["actual"]
    assert reply.usage_metadata["output_tokens"] == actual["completion_tokens"] > 0
    assert reply.usage_metadata["total_tokens"] == actual["total_tokens"]
    assert actual["prompt_tokens"] == tf_backend.count_tokens([{"role": "user", "content": "What is 345 + 678?"}])
    (run,) = chat_runs(runs)
    assert run.extra["metadata"]["ttc_strategy"] == reply.response_metadata["ttc"]["choice"]
    assert "ttc:best_of_n(4, select=majority)" in run.tags
    lines = [json.loads(x) for x in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert [r["choice"] for r in lines] == ["best_of_n(4, select=majority)", "greedy"]
    assert all(
        len(r["candidates"]) == 2 and {"accuracy", "tokens", "seconds", "utility"} <= set(r["candidates"][0])
        for r in lines
    )


@pytest.mark.slow
def test_async_graph_streams_decisions_live(tf_backend):
    node = TTCNode(TTCEngine(tf_backend, bundle_for(tf_backend.fingerprint())))
    app = graph(node, async_=True)

    async def run():
        return [
            chunk
            async for chunk in app.astream(
                {"messages": [HumanMessage("What is 2 + 3?")]},
                {"configurable": {"ttc": {"lambda_tokens": 1.0}}},
                stream_mode="custom",
            )
        ]

    chunks = asyncio.run(run())
    assert len(chunks) == 1 and chunks[0]["ttc_decision"]["choice"] == "greedy"


def test_chat_model_uses_call_settings_and_reports_its_decision():
    from ttc_agent.nodes import TTCChatModel, TTCEngine

    backend = ScriptedBackend(texts("345 + 678 = 1023"))
    model = TTCChatModel(engine=TTCEngine(backend, bundle_for(None)))
    with collect_runs() as runs:
        free = model.invoke(HARD)
    cheap = model.invoke(HARD, ttc={"lambda_tokens": 1.0})
    assert free.content == "345 + 678 = 1023"
    assert free.response_metadata["ttc"]["choice"] == "best_of_n(4, select=majority)"
    assert cheap.response_metadata["ttc"]["choice"] == "greedy"
    (run,) = chat_runs(runs)
    assert run.extra["metadata"]["ttc_strategy"] == "best_of_n(4, select=majority)"
    assert run.extra["metadata"]["ls_provider"] == "ttc-agent" and {"ttc", "ttc:best_of_n(4, select=majority)"} <= set(
        run.tags
    )
    assert run.outputs["generations"][0][0]["message"]["kwargs"]["usage_metadata"]["output_tokens"] == 20
    assert free.usage_metadata["output_tokens"] == 4 * 5
    with pytest.raises(InvalidRequestError, match="bogus"):
        model.invoke(HARD, ttc={"bogus": 1})
    assert asyncio.run(model.ainvoke(HARD, ttc={"lambda_tokens": 1.0})).response_metadata["ttc"]["choice"] == "greedy"


def test_chat_model_inside_a_graph_reads_configurable():
    from ttc_agent.nodes import TTCChatModel, TTCEngine

    model = TTCChatModel(engine=TTCEngine(ScriptedBackend(texts("= 7")), bundle_for(None)))
    g = StateGraph(MessagesState)
    g.add_node("chat", lambda state: {"messages": [model.invoke(state["messages"])]})
    g.add_edge(START, "chat")
    out = g.compile().invoke({"messages": HARD}, {"configurable": {"ttc": {"lambda_tokens": 1.0}}})
    assert out["messages"][-1].response_metadata["ttc"]["choice"] == "greedy"


def test_runtime_context_carries_settings_and_overrides_configurable():
    from ttc_agent.nodes import TTCContext, TTCEngine

    node = TTCNode(TTCEngine(ScriptedBackend(texts("= 7")), bundle_for(None)))
    g = StateGraph(MessagesState, context_schema=TTCContext)
    g.add_node("solve", node)
    g.add_edge(START, "solve")
    app = g.compile()
    by_context = app.invoke({"messages": HARD}, context=TTCContext(lambda_tokens=1.0))
    assert by_context["messages"][-1].response_metadata["ttc"]["choice"] == "greedy"
    both = app.invoke(
        {"messages": HARD},
        {"configurable": {"ttc": {"lambda_tokens": 1.0}}},
        context=TTCContext(lambda_tokens=0.0),
    )
    assert both["messages"][-1].response_metadata["ttc"]["choice"] == "best_of_n(4, select=majority)", (
        "the context wins"
    )
    with pytest.raises(InvalidRequestError, match="lamda"):
        app.invoke({"messages": HARD}, context=TTCContext(lamda=1))


def test_chat_model_streams_the_final_answer_in_chunks_and_in_a_graph():
    from langchain_core.messages import AIMessageChunk

    from ttc_agent.nodes import TTCChatModel, TTCEngine

    model = TTCChatModel(engine=TTCEngine(ScriptedBackend(texts("345 + 678 = 1023")), bundle_for(None)))
    chunks = list(model.stream(HARD, ttc={"lambda_tokens": 1.0}))
    assert len(chunks) > 3 and all(isinstance(c, AIMessageChunk) for c in chunks)
    whole = chunks[0]
    for c in chunks[1:]:
        whole += c
    assert whole.content == "345 + 678 = 1023" and whole.response_metadata["ttc"]["choice"] == "greedy"
    assert whole.usage_metadata["output_tokens"] == 5

    def ask(state):
        return {"messages": [model.invoke(state["messages"])]}

    g = StateGraph(MessagesState)
    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    pieces = [m.content for m, _ in g.compile().stream({"messages": HARD}, stream_mode="messages") if m.content]
    assert len(pieces) > 3 and "".join(pieces) == "345 + 678 = 1023"


def test_a_decided_call_does_not_count_its_prompt_again():
    from ttc_agent.nodes import TTCEngine

    backend = ScriptedBackend(texts("= 7"))
    counted = []
    count = backend.count_tokens
    backend.count_tokens = lambda prompt: counted.append(prompt) or count(prompt)
    graph(TTCNode(TTCEngine(backend, bundle_for(None)))).invoke({"messages": HARD})
    assert len(counted) == 1, "the node counts the prompt; the chat model running its decision reuses the count"


def test_the_settings_constraints_reach_the_json_schema_studio_renders():
    from ttc_agent.nodes import TTCContext

    props = TTCContext.model_json_schema()["properties"]
    assert props["lambda_tokens"]["anyOf"][0] == {"minimum": 0, "type": "number"}
    assert props["quantile"]["anyOf"][0] == {"exclusiveMaximum": 1, "minimum": 0.5, "type": "number"}
    assert props["max_call_tokens"]["anyOf"][0] == {"exclusiveMinimum": 0, "type": "integer"}
