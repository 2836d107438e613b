"""Tool calling: the call format, votes over calls, forced tool choice, and a real agent."""

import pytest
from fakes import ScriptedBackend, bundle_for
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool

from ttc_agent.backends.base import Completion
from ttc_agent.errors import InvalidRequestError
from ttc_agent.nodes import TTCChatModel, TTCEngine, TTCMiddleware, TTCNode
from ttc_agent.nodes.tools import call_key, forced_prefix, parse_call, tool_specs

CALLS = []


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as '23 + 19'."""
    CALLS.append(expression)
    allowed = set("0123456789+-*/(). ")
    if not set(expression) <= allowed:
        return f"cannot evaluate {expression!r}"
    return str(eval(expression))  # noqa: S307 - digits and operators only, checked above


def test_parse_and_normalise_calls():
    names = tool_specs([calculator])
    text = 'Sure. <tool_call>{"name": "calculator", "arguments": {"expression": "2 + 3"}}</tool_call> done'
    call = parse_call(text, names)
    assert call == {"name": "calculator", "args": {"expression": "2 + 3"}}
    copied = '<tool_call>{"name": "calculator", "arguments": {"expression": "2 + 3", "type": "string"}}</tool_call>'
    assert parse_call(copied, names) == call, "arguments the tool does not declare are dropped"
    assert parse_call('<tool_call>{"name": "calculator", "arguments": {"expression": "2 + 3', names) == call, (
        "a call cut at its stop string is closed"
    )
    unquoted = '<tool_call>{"name": "calculator", "arguments": {"expression": "2 + 3}}'
    assert parse_call(unquoted, names) == call, "a string left open before the closing braces is closed"
    assert call_key(call) == call_key({"name": "calculator", "args": {"expression": "2+3"}})
    assert parse_call('<tool_call>{"name": "rm", "arguments": {}}</tool_call>', names) is None
    assert parse_call("<tool_call>{not json", names) is None
    assert parse_call("no call here", names) is None


def test_forced_prefixes():
    specs = tool_specs([calculator])
    assert forced_prefix(specs, None) == "" and forced_prefix(specs, "auto") == ""
    assert forced_prefix(specs, "any") == '<tool_call>{"name": "calculator", "arguments": {"expression": "'
    assert forced_prefix(specs, "calculator") == forced_prefix(specs, "any")

    @tool
    def lookup(city: str, year: int) -> str:
        """Look something up."""
        return city

    @tool
    def now() -> str:
        """The time."""
        return "noon"

    two = tool_specs([calculator, lookup, now])
    assert forced_prefix(two, "any") == '<tool_call>{"name": "', "several tools: the model names one"
    assert forced_prefix(two, "lookup") == '<tool_call>{"name": "lookup", "arguments": {"city": "'
    assert forced_prefix(two, "now") == '<tool_call>{"name": "now", "arguments": {}}'

    with pytest.raises(InvalidRequestError, match="weather"):
        forced_prefix(specs, "weather")


def scripted_tool_backend():
    """Three of four samples call the calculator with '345+678' (two spellings), one answers."""

    def make(prompt, params, i):
        replies = ['345 + 678"}}</tool_call>', '345+678"}}</tool_call>', '7"}}</tool_call>', '345 + 678"}}</tool_call>']
        forced = prompt.continues_assistant
        text = (
            replies[i % 4]
            if forced
            else ("The answer is 1023." if any(m["role"] == "tool" for m in prompt.messages) else "I think 1023.")
        )
        return Completion(text, "stop", 9, (-0.3,) * 9 if params.logprobs else None)

    return ScriptedBackend(make)


def test_best_of_n_votes_over_normalised_tool_calls_and_never_beams():
    from ttc_agent.probes import FeatureSet, ProbeBundle, TextStats
    from ttc_agent.strategies.menu import Menu

    menu = Menu(("greedy", "best_of_n(4, select=majority)", "beam(width=2, expand=2, max_steps=2)"), {"max_tokens": 24})
    from fakes import synthetic_traces

    records = synthetic_traces(gain_easy=0.0, gain_hard=0.3)
    records += [{**r, "strategy": menu.specs[2], "correct": True} for r in records if r["strategy"] == "greedy"]
    bundle = ProbeBundle(menu, FeatureSet([TextStats()])).fit(records)
    backend = scripted_tool_backend()
    node = TTCNode(TTCEngine(backend, bundle))
    reply, record, _ = node.respond([HumanMessage("What is 345 + 678?")], tools=[calculator], tool_choice="any")
    assert record["choice"] == "best_of_n(4, select=majority)", "beam search is excluded from tool steps"
    assert reply.tool_calls[0]["name"] == "calculator"
    assert reply.tool_calls[0]["args"]["expression"].replace(" ", "") == "345+678", "the two spellings voted together"
    system = backend.calls[0][0][0].messages[0]
    assert system["role"] == "system" and "calculator" in system["content"]


def test_agent_with_middleware_calls_the_tool_then_answers():
    CALLS.clear()
    node = TTCNode(TTCEngine(scripted_tool_backend(), bundle_for(None)))
    agent = create_agent(
        TTCChatModel(engine=node.engine),
        tools=[calculator],
        middleware=[TTCMiddleware(node.engine, force_first_tool_call=True)],
    )
    out = agent.invoke({"messages": [HumanMessage("What is 345 + 678?")]})
    kinds = [type(m).__name__ for m in out["messages"]]
    assert kinds == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    assert CALLS and CALLS[0].replace(" ", "") == "345+678"
    assert isinstance(out["messages"][2], ToolMessage) and out["messages"][2].content == "1023"
    assert out["messages"][-1].content == "The answer is 1023."


@pytest.mark.slow
def test_react_agent_on_the_embedded_model_really_calls_the_calculator(tf_backend):
    import torch

    torch.manual_seed(0)  # sampled strategies draw from torch's generator: independent of test order
    CALLS.clear()
    node = TTCNode(TTCEngine(tf_backend, bundle_for(tf_backend.fingerprint())))
    agent = create_agent(
        TTCChatModel(engine=node.engine),
        tools=[calculator],
        middleware=[TTCMiddleware(node.engine, force_first_tool_call=True)],
    )
    out = agent.invoke({"messages": [HumanMessage("What is 345 + 678?")]}, {"recursion_limit": 8})
    assert CALLS, "the model's tool call reached the calculator"
    tool_messages = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert tool_messages and all(m.name == "calculator" for m in tool_messages)
    assert (
        out["messages"][-1].type == "ai"
        and out["messages"][-1].response_metadata["ttc"]["choice"] in node.engine.menu.specs
    )


def test_agent_budget_ledger_is_written_by_the_middleware_and_ends_the_run_cleanly():

    from ttc_agent.budgets import WorkflowBudget, budget_exhausted
    from ttc_agent.nodes import TTCContext, TTCEngine

    CALLS.clear()
    backend = scripted_tool_backend()
    node = TTCNode(TTCEngine(backend, bundle_for(None), budget=WorkflowBudget(max_tokens=2000, expected_calls=2)))
    agent = budget_agent(node)
    cfg = {"configurable": {"thread_id": "a"}}
    out = agent.invoke({"messages": [HumanMessage("What is 345 + 678?")]}, cfg)
    ledger = out["ttc_ledger"]
    usage = sum(m.usage_metadata["total_tokens"] for m in out["messages"] if m.type == "ai")
    assert ledger.calls == 2 and ledger.tokens == usage and not budget_exhausted(out)
    assert out["messages"][-1].content == "The answer is 1023."
    # A run whose budget cannot afford the first call ends with a message, not an exception.
    tight = agent.invoke(
        {"messages": [HumanMessage("What is 345 + 678?")]},
        {"configurable": {"thread_id": "b"}},
        context=TTCContext(budget=WorkflowBudget(max_tokens=30)),
    )
    assert budget_exhausted(tight) and tight["messages"][-1].content.startswith("Stopped: the workflow's tokens")
    assert [m.type for m in tight["messages"]] == ["human", "ai"]


def test_agent_budget_ask_pauses_and_resumes_with_a_grant():
    from langgraph.types import Command

    from ttc_agent.budgets import WorkflowBudget
    from ttc_agent.nodes import TTCContext, TTCEngine

    node = TTCNode(TTCEngine(scripted_tool_backend(), bundle_for(None)))
    agent = budget_agent(node)
    cfg = {"configurable": {"thread_id": "ask"}}
    ctx = TTCContext(budget=WorkflowBudget(max_tokens=30, on_exhausted="ask"))
    paused = agent.invoke({"messages": [HumanMessage("What is 345 + 678?")]}, cfg, context=ctx)
    assert paused["__interrupt__"][0].value["ttc_budget_exhausted"]["limit"] == "tokens"
    out = agent.invoke(Command(resume={"tokens": 3000}), cfg, context=ctx)
    assert out["messages"][-1].content == "The answer is 1023."
    assert out["ttc_ledger"].run_granted_tokens == 3000 and out["ttc_ledger"].run_tokens <= 3030


def budget_agent(node):
    """A checkpointed ReAct agent whose runs take a `TTCContext` (and so a workflow budget)."""
    from langgraph.checkpoint.memory import InMemorySaver

    from ttc_agent.nodes import TTCContext

    return create_agent(
        TTCChatModel(engine=node.engine),
        tools=[calculator],
        middleware=[TTCMiddleware(node.engine, force_first_tool_call=True)],
        context_schema=TTCContext,
        checkpointer=InMemorySaver(),
    )
