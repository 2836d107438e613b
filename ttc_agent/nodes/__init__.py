"""LangGraph and LangChain integration.

- `TTCNode`: a plain callable node for any graph whose state has ``messages``.
- `TTCChatModel`: a LangChain chat model doing the same, anywhere a chat model goes.
- `TTCMiddleware`: agent middleware for ``langchain.agents.create_agent``.
"""

from ttc_agent.nodes.chat_model import TTCChatModel
from ttc_agent.nodes.middleware import TTCMiddleware
from ttc_agent.nodes.ttc_node import TTCContext, TTCNode, to_chat

__all__ = ["TTCChatModel", "TTCContext", "TTCMiddleware", "TTCNode", "to_chat"]
