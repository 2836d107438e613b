"""`TTCMiddleware`: per-call test-time compute for `langchain.agents.create_agent` agents."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, NotRequired

from langchain.agents.middleware import AgentMiddleware, AgentState, ExtendedModelResponse, ModelRequest, ModelResponse
from langchain.agents.middleware.types import PrivateStateAttr
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables.config import ensure_config
from langgraph.channels.untracked_value import UntrackedValue
from langgraph.runtime import Runtime
from langgraph.types import Command
from langgraph.typing import ContextT

from ttc_agent.budgets.ledger import Ledger, merge_ledgers
from ttc_agent.nodes.attempts import Attempts, adrive, attempts, drive
from ttc_agent.nodes.chat_model import TTCChatModel
from ttc_agent.nodes.engine import Call, Reply, Ticket, TTCEngine
from ttc_agent.nodes.messages import ToolChoice
from ttc_agent.nodes.settings import run_settings, sample_cap


class TTCAgentState(AgentState):
    """The agent state `TTCMiddleware` adds: the workflow budget's ledger and the run id."""

    ttc_ledger: NotRequired[Annotated[Ledger, merge_ledgers]]
    ttc_run: NotRequired[Annotated[str, UntrackedValue(str, guard=False), PrivateStateAttr]]


class TTCMiddleware(AgentMiddleware[TTCAgentState, ContextT]):
    """Chooses the test-time compute of each model call of an agent, then lets the call go on.

    ``wrap_model_call`` asks the engine for a strategy under the run's prices, caps and
    workflow budget, and calls ``handler`` with the request's `TTCChatModel` holding that
    decision; so every middleware listed after it still runs (retries, fallbacks,
    summarisation, ...), and ``response_format`` works (its tool is offered like any other).
    A request whose model is not a `TTCChatModel` of this engine (another middleware routed it
    to a fallback model, say) goes to that model unchanged, and its usage is booked.
    What the call spent (the reply's ttc record, or the usage of whatever model answered) is
    written to the ledger (``ttc_ledger``) through the response's ``Command(update=...)``; a
    call that raised is charged its seconds and reserved tokens. When the budget cannot afford
    another call, the handler is not called and the agent ends with a message naming the
    limit (or raises, or interrupts, per ``on_exhausted``). When the decided call fails with a
    backend error, the next cheaper strategy that fits is tried (`ttc_agent.nodes.attempts`).

    Args:
        engine: decides and runs each call.
        force_first_tool_call: ask for a tool call (``tool_choice="any"``) until the agent has
            used a tool in the current turn; small models rarely call tools unprompted.

    Example:
        >>> agent = create_agent(TTCChatModel(engine=engine), tools=[calculator], middleware=[TTCMiddleware(engine)])
    """

    state_schema = TTCAgentState

    def __init__(self, engine: TTCEngine, *, force_first_tool_call: bool = False) -> None:
        super().__init__()
        self.engine = engine
        self.force_first_tool_call = force_first_tool_call

    def _tool_choice(self, request: ModelRequest[ContextT]) -> ToolChoice:
        choice: ToolChoice = request.tool_choice
        if choice is None and self.force_first_tool_call and request.tools:
            last_human = max((i for i, m in enumerate(request.messages) if isinstance(m, HumanMessage)), default=-1)
            if not any(isinstance(m, ToolMessage) for m in request.messages[last_human + 1 :]):
                choice = "any"
        return choice

    def _attempts(self, request: ModelRequest[ContextT]) -> tuple[Attempts, Callable[[Ticket], ModelRequest[ContextT]]]:
        config = ensure_config()
        runtime: Runtime[Any] = request.runtime
        settings, budget = run_settings(config, runtime.context if runtime is not None else None)
        messages = ([request.system_message] if request.system_message else []) + list(request.messages)
        choice = self._tool_choice(request)
        own = request.model.max_tokens if isinstance(request.model, TTCChatModel) else None
        call = Call(messages, request.tools, choice, settings=settings, max_tokens=sample_cap(settings, own))
        steps = attempts(self.engine, call, budget=budget, state=request.state, config=config)

        def decided(ticket: Ticket) -> ModelRequest[ContextT]:
            model = request.model
            if not (isinstance(model, TTCChatModel) and model.engine is self.engine):
                return request  # another model (a fallback's, say) answers; its usage is booked
            return request.override(model=model.model_copy(update={"ticket": ticket}), tool_choice=choice)

        return steps, decided

    def wrap_model_call(
        self,
        request: ModelRequest[ContextT],
        handler: Callable[[ModelRequest[ContextT]], ModelResponse[Any]],
    ) -> ModelResponse[Any] | ExtendedModelResponse[Any]:
        steps, decided = self._attempts(request)
        responses: list[ModelResponse[Any]] = []

        def run(ticket: Ticket) -> AIMessage:
            responses.append(handler(decided(ticket)))
            return _message(responses[-1])

        return _extended(drive(steps, run), responses)

    async def awrap_model_call(
        self,
        request: ModelRequest[ContextT],
        handler: Callable[[ModelRequest[ContextT]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any] | ExtendedModelResponse[Any]:
        steps, decided = self._attempts(request)
        responses: list[ModelResponse[Any]] = []

        async def run(ticket: Ticket) -> AIMessage:
            responses.append(await handler(decided(ticket)))
            return _message(responses[-1])

        return _extended(await adrive(steps, run), responses)


def _message(response: ModelResponse[Any]) -> AIMessage:
    """The model's reply in a handler's response."""
    return next(m for m in response.result if isinstance(m, AIMessage))


def _extended(reply: Reply, responses: list[ModelResponse[Any]]) -> ExtendedModelResponse[Any]:
    """The last handler response (or, when the budget ended the run before any call, the message
    naming the limit), with what the attempts spent as a ledger update."""
    update = {k: v for k, v in reply.update.items() if k != "messages"}
    response = responses[-1] if responses else ModelResponse(result=[reply.message])
    return ExtendedModelResponse(model_response=response, command=Command(update=update) if update else None)
