"""`TTCMiddleware`: per-call test-time compute for `langchain.agents.create_agent` agents."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.runnables.config import ensure_config

from ttc_agent.nodes.ttc_node import TTCNode
from ttc_agent.tracing import aemit, emit


class TTCMiddleware(AgentMiddleware):
    """Answers each model call of an agent with the strategy a `TTCNode` chooses.

    It wraps the model call (``wrap_model_call`` / ``awrap_model_call``), so the agent's own
    model is not called: the node featurises the conversation, the policy picks a strategy
    under the run's prices and caps (``config["configurable"]["ttc"]``), and the reply, a tool
    call or an answer, goes back to the agent. A step that may call tools votes over
    normalised calls and never uses beam search.

    Args:
        node: the `TTCNode` holding backend, probes, policy and trace sink.
        force_first_tool_call: ask for a tool call (``tool_choice="any"``) until the agent has
            used a tool in the current turn; small models rarely call tools unprompted.

    Example:
        >>> agent = create_agent(TTCChatModel(node=node), tools=[calculator], middleware=[TTCMiddleware(node)])
    """

    def __init__(self, node: TTCNode, *, force_first_tool_call: bool = False) -> None:
        super().__init__()
        self.node = node
        self.force_first_tool_call = force_first_tool_call

    def _inputs(self, request: ModelRequest) -> tuple[list[Any], Any]:
        messages = ([request.system_message] if request.system_message else []) + list(request.messages)
        choice = request.tool_choice
        if choice is None and self.force_first_tool_call and request.tools:
            last_human = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1)
            if not any(isinstance(m, ToolMessage) for m in messages[last_human + 1 :]):
                choice = "any"
        return messages, choice

    def wrap_model_call(self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]) -> ModelResponse:
        messages, choice = self._inputs(request)
        config = ensure_config()
        message, record = self.node.answer(messages, config, request.tools, choice)
        emit(record, config)
        return ModelResponse(result=[message])

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelResponse:
        messages, choice = self._inputs(request)
        config = ensure_config()
        message, record = await self.node.aanswer(messages, config, request.tools, choice)
        await aemit(record, config)
        return ModelResponse(result=[message])
