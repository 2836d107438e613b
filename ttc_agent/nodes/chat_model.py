"""`TTCChatModel`: the same per-call strategy choice, anywhere a LangChain chat model goes."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import ensure_config
from pydantic import ConfigDict

from ttc_agent.nodes.ttc_node import TTCNode
from ttc_agent.tracing import aemit_on_run, emit_on_run


class TTCChatModel(BaseChatModel):
    """A chat model that answers each call with the strategy a `TTCNode` would choose.

    Per-call settings are the node's (``lambda_tokens``, ``target_mean_tokens``, caps, ...):
    pass them as ``model.invoke(messages, ttc={...})``, or, inside a graph, through
    ``config["configurable"]["ttc"]``. Each decision is emitted as the custom event
    ``ttc_decision`` on the chat model's run and recorded in the reply's
    ``response_metadata["ttc"]``.

    The final answer can stream (``model.stream(...)``, or ``stream_mode="messages"`` in a
    graph): the chosen strategy runs to the end first (a vote or a verifier needs every
    candidate), then the chosen text streams in word-sized chunks; the last chunk carries the
    decision and the usage.

    Example:
        >>> model = TTCChatModel(node=TTCNode(backend, bundle))
        >>> model.invoke("What is 23 + 19?", ttc={"lambda_tokens": 1e-3}).content
    """

    node: TTCNode
    model_config = ConfigDict(arbitrary_types_allowed=True)

    @property
    def _llm_type(self) -> str:
        return "ttc-agent"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.node.backend.model_name, "menu": list(self.node.menu.specs)}

    def bind_tools(
        self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """This model with tools it may call (written in ``<tool_call>`` format, voted on by
        best-of-N); ``tool_choice`` ("any", "required" or a tool's name) forces a call."""
        return self.bind(tools=list(tools), tool_choice=tool_choice, **kwargs)

    def _config(self, settings: dict[str, Any] | None) -> RunnableConfig:
        if settings is not None:
            return RunnableConfig(configurable={"ttc": settings})
        return ensure_config()

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        ttc: dict[str, Any] | None = None,
        tools: Sequence[Any] = (),
        tool_choice: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = self.node.answer(messages, self._config(ttc), tools, tool_choice)
        if run_manager is not None:
            emit_on_run(reply.record, run_manager)
        return ChatResult(generations=[ChatGeneration(message=reply.message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        ttc: dict[str, Any] | None = None,
        tools: Sequence[Any] = (),
        tool_choice: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = await self.node.aanswer(messages, self._config(ttc), tools, tool_choice)
        if run_manager is not None:
            await aemit_on_run(reply.record, run_manager)
        return ChatResult(generations=[ChatGeneration(message=reply.message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        ttc: dict[str, Any] | None = None,
        tools: Sequence[Any] = (),
        tool_choice: Any = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        reply = self.node.answer(messages, self._config(ttc), tools, tool_choice)
        if run_manager is not None:
            emit_on_run(reply.record, run_manager)
        for chunk in _chunks(reply.message):
            if run_manager is not None and chunk.text:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        ttc: dict[str, Any] | None = None,
        tools: Sequence[Any] = (),
        tool_choice: Any = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        reply = await self.node.aanswer(messages, self._config(ttc), tools, tool_choice)
        if run_manager is not None:
            await aemit_on_run(reply.record, run_manager)
        for chunk in _chunks(reply.message):
            if run_manager is not None and chunk.text:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


def _chunks(message: AIMessage) -> Iterator[ChatGenerationChunk]:
    """The reply as stream chunks: its text word by word (a tool call in one piece), then a
    last chunk with the decision and the usage."""
    if message.tool_calls:
        calls = [
            tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c.get("id"), index=i)
            for i, c in enumerate(message.tool_calls)
        ]
        yield ChatGenerationChunk(message=AIMessageChunk(content=message.text, tool_call_chunks=calls))
    else:
        for piece in re.findall(r"\s*\S+\s*|\s+", message.text):
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
    yield ChatGenerationChunk(
        message=AIMessageChunk(
            content="",
            response_metadata=message.response_metadata,
            usage_metadata=message.usage_metadata,
            chunk_position="last",
        )
    )
