"""LangGraph integration: the `TTCNode`, the `TTCChatModel` wrapper and agent middleware (issue #6)."""
