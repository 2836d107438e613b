"""LangGraph and LangChain integration: one engine, three faces.

- `TTCEngine`: decides and runs each call (probes, policy, budgets, tracing); shared by:
- `TTCNode`: a runnable node for any graph whose state has ``messages``;
- `TTCChatModel`: a LangChain chat model, anywhere a chat model goes;
- `TTCMiddleware`: agent middleware for ``langchain.agents.create_agent``.
"""

from ttc_agent.nodes.chat_model import StructuredOutputError, TTCChatModel
from ttc_agent.nodes.engine import TTCEngine
from ttc_agent.nodes.messages import to_chat
from ttc_agent.nodes.middleware import TTCMiddleware
from ttc_agent.nodes.settings import TTCContext, TTCSettings
from ttc_agent.nodes.ttc_node import TTCNode

__all__ = [
    "StructuredOutputError",
    "TTCChatModel",
    "TTCContext",
    "TTCEngine",
    "TTCMiddleware",
    "TTCNode",
    "TTCSettings",
    "to_chat",
]
