"""`TTCNode`: a LangGraph node that answers the conversation with the strategy the engine picks."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import ensure_config
from langgraph._internal._runnable import RunnableCallable
from langgraph.runtime import Runtime
from pydantic import BaseModel

from ttc_agent.errors import InvalidRequestError
from ttc_agent.nodes.attempts import Attempts, adrive, attempts, drive
from ttc_agent.nodes.chat_model import TTCChatModel
from ttc_agent.nodes.engine import Call, Reply, Ticket, TTCEngine
from ttc_agent.nodes.messages import MessageLike, ToolChoice
from ttc_agent.nodes.settings import TTCContext, current_context, run_settings, sample_cap
from ttc_agent.policy import CallLimits


class TTCNode(RunnableCallable):
    """Answers the last turn of ``state["messages"]`` with test-time compute chosen per call.

    A plain runnable on state, for sync and async graphs alike (``graph.add_node("solve",
    node)``): it reads the run's settings and workflow budget from the runtime context
    (`TTCContext`) and ``config["configurable"]["ttc"]``, lets its `TTCEngine` choose a strategy
    under the budget still left (the ledger in ``state["ttc_ledger"]``), runs the call as a
    `TTCChatModel` run (so tracers, ``stream_mode="messages"`` and middleware see a chat-model
    call), and returns the reply and the ledger increment as the state update.

    Args:
        engine: decides and runs each call (shared with other faces and threads).
        name: the node's name in the graph and its runs.
        tags: tags of the node's runs.

    Example:
        >>> graph = StateGraph(State, context_schema=TTCContext)
        >>> graph.add_node("solve", TTCNode(TTCEngine(backend, bundle)))
    """

    def __init__(self, engine: TTCEngine, *, name: str = "ttc", tags: Sequence[str] | None = None) -> None:
        super().__init__(self._func, self._afunc, name=name, tags=tags, trace=False)
        self.engine = engine

    def limits(self, config: RunnableConfig | None = None, context: object = None) -> CallLimits:
        """The prices and caps a call of this run gets (from ``config`` and ``context``)."""
        return self.engine.limits(run_settings(config, context)[0])

    def _attempts(
        self,
        messages: Sequence[MessageLike],
        state: Mapping[str, Any],
        config: RunnableConfig,
        context: object,
        tools: Sequence[Any],
        tool_choice: ToolChoice,
    ) -> tuple[Attempts, Callable[[Ticket], Runnable[LanguageModelInput, BaseMessage]]]:
        settings, budget = run_settings(config, context if context is not None else current_context())
        call = Call(messages, tools, tool_choice, settings=settings, max_tokens=sample_cap(settings))
        steps = attempts(self.engine, call, budget=budget, state=state, config=config)

        def model(ticket: Ticket) -> Runnable[LanguageModelInput, BaseMessage]:
            chat = TTCChatModel(engine=self.engine, ticket=ticket)
            return chat.bind_tools(tools, tool_choice=tool_choice) if tools else chat

        return steps, model

    def respond(
        self,
        messages: Sequence[MessageLike],
        state: Any = None,
        config: RunnableConfig | None = None,
        tools: Sequence[Any] = (),
        tool_choice: ToolChoice = None,
        *,
        context: object = None,
    ) -> Reply:
        """Answer ``messages`` from inside any node: the reply, its decision record and the
        state update to return (with the ledger increment under a budget). ``state`` holds the
        ledger; ``context`` defaults to the current run's. With ``tools`` the reply may be a
        tool call (best-of-N votes over normalised calls; beam search is not used). When the
        backend fails, the next cheaper strategy that fits is tried (see `attempts`)."""
        config, state = ensure_config(config), _as_mapping(state)
        steps, model = self._attempts(messages, state, config, context, tools, tool_choice)
        return drive(steps, lambda ticket: _ai(model(ticket).invoke(_as_input(messages), config)))

    async def arespond(
        self,
        messages: Sequence[MessageLike],
        state: Any = None,
        config: RunnableConfig | None = None,
        tools: Sequence[Any] = (),
        tool_choice: ToolChoice = None,
        *,
        context: object = None,
    ) -> Reply:
        """Async `respond`."""
        config, state = ensure_config(config), _as_mapping(state)
        steps, model = self._attempts(messages, state, config, context, tools, tool_choice)

        async def run(ticket: Ticket) -> AIMessage:
            return _ai(await model(ticket).ainvoke(_as_input(messages), config))

        return await adrive(steps, run)

    def _func(self, state: Any, config: RunnableConfig, runtime: Runtime[TTCContext]) -> dict[str, Any]:
        return self.respond(_messages(state), state, config, context=runtime.context).update

    async def _afunc(self, state: Any, config: RunnableConfig, runtime: Runtime[TTCContext]) -> dict[str, Any]:
        return (await self.arespond(_messages(state), state, config, context=runtime.context)).update


def _ai(message: BaseMessage) -> AIMessage:
    assert isinstance(message, AIMessage)  # a chat model's reply
    return message


def _as_mapping(state: object) -> Mapping[str, Any]:
    """A graph state (a mapping, a pydantic model or a dataclass) as a mapping of its channels."""
    if state is None:
        return {}
    if isinstance(state, Mapping):
        return state
    fields: dict[str, Any] = dict(state) if isinstance(state, BaseModel) else dict(vars(state))
    return fields


def _as_input(messages: Sequence[MessageLike]) -> list[BaseMessage | dict[str, Any]]:
    return [m if isinstance(m, BaseMessage) else dict(m) for m in messages]


def _messages(state: object) -> list[MessageLike]:
    messages = _as_mapping(state).get("messages")
    if not messages:
        raise InvalidRequestError("the state has no messages to answer")
    return list(messages)
