"""TTCChatModel outside a graph: any LCEL chain, no runtime, no budget, no error."""

from __future__ import annotations

from fakes import ScriptedBackend, bundle_for, texts
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from ttc_agent.nodes import TTCChatModel, TTCEngine


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
