"""LangGraph integration: `TTCNode`, a plain callable node for any graph with ``messages``."""

from ttc_agent.nodes.ttc_node import TTCNode, to_chat

__all__ = ["TTCNode", "to_chat"]
