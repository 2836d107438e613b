"""`TTCMiddleware`: per-call test-time compute for `langchain.agents.create_agent` agents."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, NotRequired

from langchain.agents.middleware import AgentMiddleware, AgentState, ExtendedModelResponse, ModelRequest, ModelResponse
from langchain.agents.middleware.types import PrivateStateAttr
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.runnables.config import ensure_config
from langgraph.channels.untracked_value import UntrackedValue
from langgraph.types import Command
from langgraph.typing import ContextT

from ttc_agent.budgets.ledger import Ledger, merge_ledgers
from ttc_agent.nodes.ttc_node import Reply, TTCNode
from ttc_agent.tracing import aemit, emit


class TTCAgentState(AgentState):
    """The agent state `TTCMiddleware` adds: the workflow budget's ledger and the run id."""

    ttc_ledger: NotRequired[Annotated[Ledger, merge_ledgers]]
    ttc_run: NotRequired[Annotated[str, UntrackedValue(str, guard=False), PrivateStateAttr]]


def _response(reply: Reply) -> ModelResponse | ExtendedModelResponse:
    """The model response, with the ledger increment as a state update when a budget is active."""
    response = ModelResponse(result=[reply.message])
    update = {k: v for k, v in reply.update.items() if k != "messages"}
    return ExtendedModelResponse(model_response=response, command=Command(update=update)) if update else response


class TTCMiddleware(AgentMiddleware[TTCAgentState, ContextT]):
    """Answers each model call of an agent with the strategy a `TTCNode` chooses.

    It wraps the model call (``wrap_model_call`` / ``awrap_model_call``), so the agent's own
    model is not called: the node featurises the conversation, the policy picks a strategy
    under the run's prices and caps (``config["configurable"]["ttc"]``), and the reply, a tool
    call or an answer, goes back to the agent. A step that may call tools votes over
    normalised calls and never uses beam search.

    Under a workflow budget (the node's, or ``context=TTCContext(budget=...)``), the agent's
    state gains the ledger (``ttc_ledger``), written from each model call through
    ``ExtendedModelResponse(..., command=Command(update=...))``; when the budget cannot afford
    another call, the agent ends with a message saying which limit was reached (or raises, or
    interrupts, per ``on_exhausted``).

    Args:
        node: the `TTCNode` holding backend, probes, policy and trace sink.
        force_first_tool_call: ask for a tool call (``tool_choice="any"``) until the agent has
            used a tool in the current turn; small models rarely call tools unprompted.

    Example:
        >>> agent = create_agent(TTCChatModel(node=node), tools=[calculator], middleware=[TTCMiddleware(node)])
    """

    state_schema = TTCAgentState

    def __init__(self, node: TTCNode, *, force_first_tool_call: bool = False) -> None:
        super().__init__()
        self.node = node
        self.force_first_tool_call = force_first_tool_call

    def _inputs(self, request: ModelRequest[ContextT]) -> tuple[list[Any], Any]:
        messages = ([request.system_message] if request.system_message else []) + list(request.messages)
        choice = request.tool_choice
        if choice is None and self.force_first_tool_call and request.tools:
            last_human = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1)
            if not any(isinstance(m, ToolMessage) for m in messages[last_human + 1 :]):
                choice = "any"
        return messages, choice

    def wrap_model_call(
        self, request: ModelRequest[ContextT], handler: Callable[[ModelRequest[ContextT]], ModelResponse[Any]]
    ) -> ModelResponse | ExtendedModelResponse:
        messages, choice = self._inputs(request)
        config = ensure_config()
        reply = self.node.respond(messages, request.state, config, request.tools, choice)
        emit(reply.record, config)
        return _response(reply)

    async def awrap_model_call(
        self,
        request: ModelRequest[ContextT],
        handler: Callable[[ModelRequest[ContextT]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse | ExtendedModelResponse:
        messages, choice = self._inputs(request)
        config = ensure_config()
        reply = await self.node.arespond(messages, request.state, config, request.tools, choice)
        await aemit(reply.record, config)
        return _response(reply)
