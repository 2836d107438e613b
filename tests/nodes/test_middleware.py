"""`TTCMiddleware` composes: it decides, then calls its handler, so middleware on either side
of it runs, retries and fallbacks work, and ``response_format`` ends with a structured answer."""

from __future__ import annotations

import pytest
from fakes import ScriptedBackend, bundle_for
from langchain.agents import create_agent
from langchain.agents.middleware import ModelFallbackMiddleware, ModelRetryMiddleware, wrap_model_call
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from ttc_agent.backends.base import Completion
from ttc_agent.budgets import WorkflowBudget
from ttc_agent.errors import BackendUnavailableError
from ttc_agent.nodes import TTCChatModel, TTCEngine, TTCMiddleware
from ttc_agent.strategies import TokenBudgetError

Q = [HumanMessage("What is 345 + 678?")]


class Answer(BaseModel):
    """The final answer."""

    value: int


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as '23 + 19'."""
    return "1023" if expression.replace(" ", "") == "345+678" else "?"


def agent_backend(failures: int = 0) -> ScriptedBackend:
    """Calls the calculator, then answers (with the ``Answer`` tool when it is offered);
    the first ``failures`` generations fail as an unreachable server does."""
    state = {"failures": failures}

    def make(prompt, params, i):
        if state["failures"]:
            state["failures"] -= 1
            raise BackendUnavailableError("the model server is down")
        chat = prompt.messages
        used_tool = any(m["role"] == "tool" for m in chat)
        logprobs = (lambda n: (-0.3,) * n) if params.logprobs else (lambda n: None)
        if not prompt.continues_assistant:
            return Completion("The answer is 1023.", "stop", 6, logprobs(6))
        call = ("calculator", '{"expression": "345 + 678"}') if not used_tool else ("Answer", '{"value": 1023}')
        full = f'<tool_call>{{"name": "{call[0]}", "arguments": {call[1]}}}</tool_call>'
        prefix = chat[-1]["content"]
        text = full[len(prefix) :] if full.startswith(prefix) else full
        return Completion(text, "stop", 12, logprobs(12))

    return ScriptedBackend(make)


def recorder(log: list[str], name: str):
    @wrap_model_call(name=name)
    def record(request, handler):
        log.append(f"{name}:{type(request.model).__name__}:{getattr(request.model, 'ticket', None) is not None}")
        return handler(request)

    return record


@pytest.mark.parametrize("ttc_first", [True, False])
def test_ttc_runs_between_other_middleware_in_either_order(ttc_first):
    engine = TTCEngine(agent_backend(), bundle_for(None), budget=WorkflowBudget(max_tokens=5000))
    log: list[str] = []
    ttc = TTCMiddleware(engine, force_first_tool_call=True)
    others = [recorder(log, "outer"), ModelRetryMiddleware(max_retries=1, initial_delay=0)]
    middleware = [ttc, *others] if ttc_first else [*others, ttc]
    agent = create_agent(TTCChatModel(engine=engine), tools=[calculator], middleware=middleware)
    out = agent.invoke({"messages": Q})
    assert [m.type for m in out["messages"]] == ["human", "ai", "tool", "ai"]
    assert out["messages"][-1].content == "The answer is 1023."
    # The recorder sees each call: after TTC it sees the decided (pinned) model, before it the agent's.
    assert log == [f"outer:TTCChatModel:{ttc_first}"] * 2
    usage = sum(m.usage_metadata["total_tokens"] for m in out["messages"] if m.type == "ai")
    assert out["ttc_ledger"].calls == 2 and out["ttc_ledger"].tokens == usage
    assert all("budget" in m.response_metadata["ttc"] for m in out["messages"] if m.type == "ai")


def test_a_retry_after_ttc_repeats_the_decided_call_and_the_ledger_books_the_failure():
    engine = TTCEngine(agent_backend(failures=1), bundle_for(None), budget=WorkflowBudget(max_tokens=5000))
    agent = create_agent(
        TTCChatModel(engine=engine),
        tools=[calculator],
        middleware=[TTCMiddleware(engine, force_first_tool_call=True), ModelRetryMiddleware(initial_delay=0)],
    )
    out = agent.invoke({"messages": Q})
    assert out["messages"][-1].content == "The answer is 1023."
    assert out["ttc_ledger"].calls == 2


class CountingBackend(ScriptedBackend):
    """The agent's scripted backend, adding up every token it read and generated."""

    spent = 0

    def generate(self, prompts, params=None, **kwargs):
        gen = super().generate(prompts, params, **kwargs)
        self.spent += sum(r.prompt_tokens + sum(c.num_tokens for c in r.completions) for r in gen.results)
        return gen


def test_a_middleware_that_runs_the_decided_call_twice_has_both_runs_booked():
    backend = CountingBackend(agent_backend().make)
    engine = TTCEngine(backend, bundle_for(None), budget=WorkflowBudget(max_tokens=5000))

    @wrap_model_call(name="twice")
    def twice(request, handler):
        handler(request)  # a reply thrown away (a judge comparing two drafts, say) is still spent
        return handler(request)

    agent = create_agent(
        TTCChatModel(engine=engine),
        tools=[calculator],
        middleware=[TTCMiddleware(engine, force_first_tool_call=True), twice],
    )
    out = agent.invoke({"messages": Q})
    assert out["messages"][-1].content == "The answer is 1023."
    replies = [m for m in out["messages"] if m.type == "ai"]
    # Both runs of each of the two calls are booked, as the backend counted them.
    assert out["ttc_ledger"].tokens == backend.spent == 2 * sum(m.usage_metadata["total_tokens"] for m in replies)
    assert [m.response_metadata["ttc"]["budget"]["charged"]["tokens"] for m in replies] == [
        2 * m.usage_metadata["total_tokens"] for m in replies
    ]


def test_runs_of_one_decided_call_share_its_token_cap():
    backend = CountingBackend(agent_backend().make)
    engine = TTCEngine(backend, bundle_for(None), budget=WorkflowBudget(max_tokens=400))
    runs = []

    @wrap_model_call(name="again_and_again")
    def again_and_again(request, handler):
        while len(runs) < 100:
            runs.append(handler(request))
        return runs[-1]

    agent = create_agent(TTCChatModel(engine=engine), middleware=[TTCMiddleware(engine), again_and_again])
    # The run that no longer fits is refused before it generates: nothing is left of the cap, or
    # too little for its first round.
    with pytest.raises(TokenBudgetError, match="earlier run|cannot fit max_total_tokens"):
        agent.invoke({"messages": Q})
    # Each run got only what the earlier ones left of the call's cap: the workflow's 400 tokens
    # were never overrun however often the model was run again.
    assert 1 < len(runs) < 100 and backend.spent <= 400


def test_a_fallback_model_answers_when_ttc_fails_and_its_usage_is_booked():
    engine = TTCEngine(agent_backend(failures=100), bundle_for(None), budget=WorkflowBudget(max_tokens=5000))
    fallback = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(
                    "fallback says 1023", usage_metadata={"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}
                )
            ]
        )
    )
    for middleware in (
        [TTCMiddleware(engine), ModelFallbackMiddleware(fallback)],
        [ModelFallbackMiddleware(fallback), TTCMiddleware(engine)],
    ):
        fallback.messages = iter(
            [
                AIMessage(
                    "fallback says 1023", usage_metadata={"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}
                )
            ]
        )
        agent = create_agent(TTCChatModel(engine=engine), middleware=middleware)
        out = agent.invoke({"messages": Q})
        assert out["messages"][-1].content == "fallback says 1023"
        ledger = out["ttc_ledger"]
        # Fallback inside TTC: one booked call (the fallback's usage). Outside: the failed
        # decided call is charged its reservation, then the fallback's call is booked.
        assert ledger.tokens >= 10 and ledger.calls >= 1


def test_response_format_ends_with_a_structured_answer():
    engine = TTCEngine(agent_backend(), bundle_for(None))
    agent = create_agent(
        TTCChatModel(engine=engine),
        tools=[calculator],
        middleware=[TTCMiddleware(engine, force_first_tool_call=True)],
        response_format=Answer,
    )
    out = agent.invoke({"messages": Q}, {"recursion_limit": 10})
    assert out["structured_response"] == Answer(value=1023)


@pytest.mark.slow
def test_response_format_on_the_embedded_model(tf_backend):
    from ttc_agent.demo import shipped_probes

    engine = TTCEngine(tf_backend, shipped_probes(tf_backend))
    agent = create_agent(
        TTCChatModel(engine=engine, max_tokens=48),
        middleware=[TTCMiddleware(engine), recorder([], "other")],
        response_format=Answer,
    )
    out = agent.invoke({"messages": [HumanMessage("What is 2 + 3? Give the value.")]}, {"recursion_limit": 10})
    assert isinstance(out["structured_response"], Answer)
