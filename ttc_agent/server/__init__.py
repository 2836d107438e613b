"""``ttc-agent serve``: an OpenAI-compatible endpoint where every request gets the strategy the
engine picks, and sessions of many requests share one budget kept in a `BudgetStore`.

- `ChatService`: the engine's face for one request (checks, session budget, fallback);
- `create_app`: the FastAPI routes (auth, size limits, streaming);
- `SessionDefaults`: limits of sessions made on first use.

Example:
    >>> store = PostgresStore("postgresql://ttc@db/ttc")
    >>> engine = TTCEngine(OpenAIBackend("http://vllm:8000/v1"), probes, pool=store)
    >>> app = create_app(ChatService(engine, store, model_name="qwen"), api_keys=["sk-..."])
"""

from ttc_agent.server.app import create_app, owner_of
from ttc_agent.server.protocol import APIError, ChatRequest
from ttc_agent.server.service import ChatService, SessionDefaults

__all__ = ["APIError", "ChatRequest", "ChatService", "SessionDefaults", "create_app", "owner_of"]
