"""`TTCChatModel`: the engine's per-call strategy choice, anywhere a LangChain chat model goes."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.runnables.config import ensure_config
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from opentelemetry.trace import Span
from pydantic import ConfigDict, Field, ValidationError, field_validator

from ttc_agent.errors import InvalidRequestError
from ttc_agent.nodes.engine import Call, Ticket, TTCEngine
from ttc_agent.nodes.messages import ChatPrompt, ToolChoice
from ttc_agent.nodes.settings import current_context, merge, parse_settings, run_settings, sample_cap
from ttc_agent.strategies import Outcome
from ttc_agent.tracing import annotate_run, call_span, end_span

_CALL_KWARGS = frozenset({"ttc", "tools", "tool_choice", "model"})


class StructuredOutputError(InvalidRequestError):
    """The chosen reply does not follow the structured-output schema (no call of it, or
    arguments the schema rejects)."""


class TTCChatModel(BaseChatModel):
    """A chat model that answers each call with the strategy its `TTCEngine` chooses.

    It works in any LCEL chain, inside or outside a graph. Per-call settings (prices, caps, a
    forced strategy: the fields of `TTCSettings`) come from ``model.invoke(messages, ttc={...})``,
    laid over ``config["configurable"]["ttc"]`` and a graph run's `TTCContext`. Workflow budgets
    need the graph's state, so they apply through `TTCNode` and `TTCMiddleware`, which decide
    the call and hand it to this model.

    The reply carries the decision in ``response_metadata["ttc"]`` and the exact usage in
    ``usage_metadata``; the run's metadata and tags name the strategy (LangSmith shows them).
    ``stream`` runs the chosen strategy to the end first (a vote or a verifier needs every
    candidate), then streams the chosen text; the last chunk carries the decision and usage.

    Attributes:
        engine: the engine that decides and runs each call.
        temperature: ``0`` restricts each call to deterministic (greedy) strategies; ``None``
            (default) lets the engine choose. The probes predict each strategy at its menu's
            sampling temperature, so no other value is accepted.
        max_tokens: each sample's cap on generated tokens: the strategies run with it (above or
            below the menu's cap, which applies when it is unset) and the probes predict under
            it; a run's ``max_tokens_per_sample`` setting overrides it.
        timeout: each call's deadline in seconds (a strategy predicted to take longer is not
            chosen; generation stops when it passes).
        stop: stop strings; a reply ends before the first one.
        streaming: ``invoke`` streams (LangChain's convention).
        ticket: a call already decided (`TTCNode` and `TTCMiddleware` set it); ``None``: decide.

    Example:
        >>> model = TTCChatModel(engine=TTCEngine(backend, bundle))
        >>> (prompt | model | StrOutputParser()).invoke({"question": "What is 23 + 19?"})
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    engine: TTCEngine
    temperature: float | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    timeout: float | None = Field(default=None, gt=0)
    stop: list[str] | None = None
    streaming: bool = False
    ticket: Ticket | None = Field(default=None, exclude=True, repr=False)

    @field_validator("temperature")
    @classmethod
    def _deterministic_or_menu(cls, value: float | None) -> float | None:
        if value not in (None, 0):
            raise ValueError(
                f"temperature={value!r}: use 0 (greedy strategies only) or None (the menu's temperatures, "
                "which the probes were trained at)"
            )
        return value

    @property
    def _llm_type(self) -> str:
        return "ttc-agent"

    @property
    def model_name(self) -> str:
        """The backend's model."""
        return self.engine.backend.model_name

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model_name, "menu": list(self.engine.menu.specs)}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(ls_provider="ttc-agent", ls_model_name=kwargs.get("model", self.model_name))
        params["ls_model_type"] = "chat"
        if self.temperature is not None:
            params["ls_temperature"] = self.temperature
        if self.max_tokens is not None:
            params["ls_max_tokens"] = self.max_tokens
        if stop or self.stop:
            params["ls_stop"] = list(stop or self.stop or [])
        return params

    # -- tools and structured output -------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[Mapping[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: ToolChoice = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """This model with tools it may call (written in ``<tool_call>`` format, voted on by
        best-of-N); ``tool_choice`` ("any", "required" or a tool's name) forces a call."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def with_structured_output(
        self,
        schema: Mapping[str, Any] | type,
        *,
        include_raw: bool = False,
        method: Literal["function_calling", "json_schema", "json_mode"] = "function_calling",
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """This model answering with an instance of ``schema`` (a pydantic model, or a JSON
        schema / OpenAI tool dict, giving a dict).

        The models ttc-agent serves have no native JSON mode, so every ``method`` writes the
        object as a forced call of a tool shaped like the schema, which best-of-N votes on;
        ``strict`` is accepted for compatibility (the schema is always checked). When the chosen
        reply does not fit the schema, `StructuredOutputError` is raised (with
        ``include_raw=True`` it is returned as ``parsing_error`` next to the raw message).
        """
        if kwargs:
            raise InvalidRequestError(f"with_structured_output does not take {sorted(kwargs)}")
        if method not in ("function_calling", "json_schema", "json_mode"):
            raise InvalidRequestError(f"unknown structured-output method {method!r}")
        tool = convert_to_openai_tool(schema)
        name = tool["function"]["name"]
        bound = self.bind_tools(
            [tool],
            tool_choice=name,
            ls_structured_output_format={"kwargs": {"method": method, "strict": strict}, "schema": tool},
        )
        model_class = schema if isinstance(schema, type) and hasattr(schema, "parse_obj") else None
        required = set(tool["function"].get("parameters", {}).get("required", []))

        def parse(message: AIMessage) -> Any:
            calls = [c for c in message.tool_calls if c["name"] == name]
            if not calls:
                raise StructuredOutputError(f"the reply does not call {name!r}: {message.text[:300]!r}")
            args = calls[0]["args"]
            if model_class is None:
                missing = sorted(required - set(args))
                if missing:
                    raise StructuredOutputError(f"the reply's {name!r} arguments lack {missing}: {args!r}")
                return args
            try:  # pydantic 2 models, and pydantic.v1 ones (parse_obj)
                validate = getattr(model_class, "model_validate", None) or model_class.parse_obj
                return validate(args)
            except (ValidationError, ValueError) as exc:
                raise StructuredOutputError(f"the reply's {name!r} arguments do not fit the schema: {exc}") from None

        if not include_raw:
            return bound | RunnableLambda(parse)

        def parse_with_raw(message: AIMessage) -> dict[str, Any]:
            try:
                return {"raw": message, "parsed": parse(message), "parsing_error": None}
            except StructuredOutputError as exc:
                return {"raw": message, "parsed": None, "parsing_error": exc}

        return bound | RunnableLambda(parse_with_raw)

    # -- token counting ----------------------------------------------------------------------

    def get_num_tokens(self, text: str) -> int:
        """Tokens of ``text`` in the backend's own tokenizer."""
        return self.engine.backend.count_tokens(text)

    def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools: Sequence[Any] | None = None) -> int:
        """Tokens of the prompt ``messages`` (and ``tools``) make, in the backend's tokenizer."""
        return self.engine.prompt(Call(messages, tools or ())).tokens

    # -- generation ----------------------------------------------------------------------------

    def _call(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> Call:
        unknown = sorted(set(kwargs) - _CALL_KWARGS)
        if unknown:
            raise InvalidRequestError(f"TTCChatModel does not take {unknown}; it takes {sorted(_CALL_KWARGS)}")
        model = kwargs.get("model")
        if model is not None and model != self.model_name:
            raise InvalidRequestError(f"this TTCChatModel serves {self.model_name!r}, not {model!r}")
        configured, _ = run_settings(ensure_config(), current_context())
        settings = merge(configured, parse_settings(kwargs.get("ttc"), "the call's ttc="))
        if self.timeout is not None and settings.max_call_seconds is None:
            settings = settings.model_copy(update={"max_call_seconds": self.timeout})
        return Call(
            messages,
            tools=kwargs.get("tools") or (),
            tool_choice=kwargs.get("tool_choice"),
            stop=tuple(stop if stop is not None else self.stop or ()),
            settings=settings,
            deterministic=self.temperature == 0,
            max_tokens=sample_cap(settings, self.max_tokens),
        )

    def _decided(self, call: Call) -> tuple[ChatPrompt, Ticket]:
        if self.ticket is not None:  # decided by a node or middleware, most often on this very prompt
            return self.engine.prompt(call, self.ticket.prompt), self.ticket
        prompt = self.engine.prompt(call)
        return prompt, self.engine.decide(call, prompt)

    def _reply(
        self,
        ticket: Ticket,
        prompt: ChatPrompt,
        outcome: Outcome,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
        span: Span,
    ) -> ChatResult:
        message = self.engine.finish(ticket, prompt, outcome)
        end_span(span, message, self.model_name)
        if run_manager is not None:
            annotate_run(run_manager, ticket.decision)
        if self.ticket is None:  # decided here: publish now (a node or middleware settles its own)
            self.engine.settle(ticket, message, {})
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._call(messages, stop, kwargs)
        prompt, ticket = self._decided(call)
        with call_span(self.engine.name, self.model_name, ticket.decision, call.stop) as span:
            outcome = self.engine.run(ticket, call, prompt)
            return self._reply(ticket, prompt, outcome, run_manager, span)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._call(messages, stop, kwargs)
        prompt, ticket = self._decided(call)
        with call_span(self.engine.name, self.model_name, ticket.decision, call.stop) as span:
            outcome = await self.engine.arun(ticket, call, prompt)
            return self._reply(ticket, prompt, outcome, run_manager, span)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        message = self._generate(messages, stop, run_manager, **kwargs).generations[0].message
        for chunk in _chunks(message):
            if run_manager is not None and chunk.text:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        message = (await self._agenerate(messages, stop, run_manager, **kwargs)).generations[0].message
        for chunk in _chunks(message):
            if run_manager is not None and chunk.text:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


def _chunks(message: BaseMessage) -> Iterator[ChatGenerationChunk]:
    """The reply as stream chunks: its text word by word (a tool call in one piece), then a
    last chunk with the decision and the usage."""
    assert isinstance(message, AIMessage)
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
