"""TTCChatModel as LangChain users use it: LCEL chains outside a graph, stop strings, the
backend's own token counts, structured output, and typed errors for bad arguments."""

from __future__ import annotations

import pytest
from fakes import ScriptedBackend, bundle_for, texts
from langchain_core.messages import HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from pydantic import BaseModel

from ttc_agent.backends.base import Completion
from ttc_agent.errors import InvalidRequestError
from ttc_agent.nodes import StructuredOutputError, TTCChatModel, TTCEngine


def model() -> TTCChatModel:
    return TTCChatModel(engine=TTCEngine(ScriptedBackend(texts("= 5")), bundle_for(None)))


def test_chat_model_works_in_lcel_chains_outside_a_graph():
    m = model()
    reply = m.invoke("What is 2 + 3?")
    assert reply.content == "= 5" and reply.response_metadata["ttc"]["choice"] in bundle_for(None).specs
    assert (m | StrOutputParser()).invoke("What is 2 + 3?") == "= 5"
    prompt = ChatPromptTemplate.from_messages([("human", "What is {a} + 3?")])
    assert (prompt | m | StrOutputParser()).invoke({"a": 2}) == "= 5"
    assert "".join(c.content for c in m.stream("What is 2 + 3?")) == "= 5"


async def test_async_chat_model_outside_a_graph():
    assert (await model().ainvoke("What is 2 + 3?")).content == "= 5"


def test_stop_strings_reach_the_backend_and_tokens_are_counted_by_it():
    backend = ScriptedBackend(texts("= 5"))
    m = TTCChatModel(engine=TTCEngine(backend, bundle_for(None)), stop=["\n\n"])
    m.invoke("What is 2 + 3?", ttc={"strategy": "greedy"})
    m.invoke("What is 2 + 3?", stop=["you"], ttc={"strategy": "best_of_n(4, select=majority)"})
    assert "\n\n" in backend.calls[0][1].stop and backend.calls[1][1].stop[-1] == "you"
    assert m.get_num_tokens("anything") == 10 == m.get_num_tokens_from_messages([HumanMessage("What is 2 + 3?")])


def test_chat_model_parameters_constrain_the_choice():
    engine = TTCEngine(ScriptedBackend(texts("= 5")), bundle_for(None))
    greedy_only = TTCChatModel(engine=engine, temperature=0)
    assert greedy_only.invoke("What is 345 + 678?").response_metadata["ttc"]["choice"] == "greedy"
    with pytest.raises(ValueError, match="temperature=0.5"):
        TTCChatModel(engine=engine, temperature=0.5)
    with pytest.raises(ValueError, match="api_key"):
        TTCChatModel(engine=engine, api_key="sk")
    capped = TTCChatModel(engine=engine, max_tokens=3).invoke("What is 2 + 3?", ttc={"strategy": "greedy"})
    assert capped.usage_metadata["output_tokens"] == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ttc": {"strategy": "best_of_n(99, select=majority)"}}, "is not in the menu"),
        ({"ttc": {"strategy": "no_such(1)"}}, "no_such"),
        ({"ttc": {"lamda_tokens": 1}}, "unknown setting 'lamda_tokens'"),
        ({"frequency_penalty": 1.0}, "does not take \\['frequency_penalty'\\]"),
        ({"model": "gpt-4o"}, "serves 'scripted', not 'gpt-4o'"),
    ],
)
def test_bad_call_arguments_are_typed_errors(kwargs, message):
    with pytest.raises(InvalidRequestError, match=message):
        model().invoke("What is 2 + 3?", **kwargs)


def test_structured_output_parses_a_forced_call_or_raises_a_typed_error():
    class Sum(BaseModel):
        value: int

    def make(prompt, params, i):
        prefix = prompt.messages[-1]["content"] if prompt.continues_assistant else ""
        return Completion("5}}</tool_call>" if prefix.endswith('"value": ') else "five", "stop", 4)

    engine = TTCEngine(ScriptedBackend(make), bundle_for(None))
    parsed = (
        TTCChatModel(engine=engine).with_structured_output(Sum).invoke("What is 2 + 3?", ttc={"strategy": "greedy"})
    )
    assert parsed == Sum(value=5)

    broken = TTCChatModel(engine=TTCEngine(ScriptedBackend(texts("five")), bundle_for(None)))
    with pytest.raises(StructuredOutputError, match="does not call 'Sum'"):
        broken.with_structured_output(Sum).invoke("What is 2 + 3?", ttc={"strategy": "greedy"})
    raw = broken.with_structured_output(Sum, include_raw=True).invoke("What is 2 + 3?", ttc={"strategy": "greedy"})
    assert raw["parsed"] is None and isinstance(raw["parsing_error"], StructuredOutputError) and raw["raw"].content


def test_structured_output_checks_dict_schemas_and_takes_pydantic_v1_models():
    from pydantic import v1

    class Pair(v1.BaseModel):
        a: int
        b: int

    def make(prompt, params, i):
        return Completion('1, "b": 2}}</tool_call>', "stop", 6)

    model = TTCChatModel(engine=TTCEngine(ScriptedBackend(make), bundle_for(None)))
    assert model.with_structured_output(Pair).invoke("Two numbers?", ttc={"strategy": "greedy"}) == Pair(a=1, b=2)
    schema = {"title": "Triple", "description": "Three numbers.", "type": "object", "required": ["a", "b", "c"],
              "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "c": {"type": "integer"}}}  # fmt: skip
    with pytest.raises(StructuredOutputError, match=r"lack \['c'\]"):
        model.with_structured_output(schema).invoke("Three numbers?", ttc={"strategy": "greedy"})


SAY = {
    "type": "function",
    "function": {
        "name": "say",
        "description": "Say it.",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
    },
}


def test_a_call_cut_off_by_the_token_limit_is_not_repaired_into_a_call():
    from ttc_agent.nodes.tools import parse_call, tool_specs

    cut = '<tool_call>{"name": "say", "arguments": {"text": "The cat was a cat and the'
    assert parse_call(cut, tool_specs([SAY]), repair=False) is None
    assert parse_call(cut, tool_specs([SAY]))["args"] == {"text": "The cat was a cat and the"}

    def make(prompt, params, i):
        return Completion("The cat was a cat and the", "length", params.max_tokens)

    model = TTCChatModel(engine=TTCEngine(ScriptedBackend(make), bundle_for(None)), max_tokens=8)
    reply = model.bind_tools([SAY], tool_choice="say").invoke("Say something.", ttc={"strategy": "greedy"})
    assert reply.tool_calls == [] and reply.response_metadata["finish_reason"] == "length"
