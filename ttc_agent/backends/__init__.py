"""Generation backends: one `Backend` protocol, three real implementations.

- `TransformersBackend`: a local model run with torch; the embedded default (SmolLM2-135M).
- `VLLMBackend`: an in-process vLLM engine.
- `OpenAIBackend`: any OpenAI-compatible server, such as ``vllm serve``.
- `ChatModelBackend`: any LangChain chat model (``ChatOpenAI(base_url=...)`` and others).

`VLLMServer` starts a real ``vllm serve`` process for tests, benchmarks and examples.

The implementations import their heavy dependencies lazily, on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ttc_agent._lazy import lazy_getattr
from ttc_agent.backends.base import (
    Backend,
    Completion,
    Generation,
    Message,
    Prompt,
    PromptResult,
    SamplingParams,
)

if TYPE_CHECKING:
    from ttc_agent.backends.chat_model_backend import ChatModelBackend
    from ttc_agent.backends.openai_backend import OpenAIBackend
    from ttc_agent.backends.transformers_backend import TransformersBackend
    from ttc_agent.backends.vllm_backend import VLLMBackend
    from ttc_agent.backends.vllm_server import VLLMServer

__all__ = [
    "Backend",
    "ChatModelBackend",
    "Completion",
    "Generation",
    "Message",
    "OpenAIBackend",
    "Prompt",
    "PromptResult",
    "SamplingParams",
    "TransformersBackend",
    "VLLMBackend",
    "VLLMServer",
    "load_backend",
]

_LAZY = {
    "TransformersBackend": "ttc_agent.backends.transformers_backend",
    "VLLMBackend": "ttc_agent.backends.vllm_backend",
    "OpenAIBackend": "ttc_agent.backends.openai_backend",
    "ChatModelBackend": "ttc_agent.backends.chat_model_backend",
    "VLLMServer": "ttc_agent.backends.vllm_server",
}


__getattr__ = lazy_getattr(__name__, _LAZY)

#: The backends `load_backend` runs in this process, by name (a server is given by its URL).
LOCAL_BACKENDS = ("transformers", "vllm")


def load_backend(spec: str = "transformers", model: str | None = None, **kwargs: Any) -> Backend:
    """Build a backend from a short spec, as the CLI does.

    ``"transformers"`` and ``"vllm"`` load ``model`` (a local folder; default: the embedded
    model); ``"http://host:port/v1"`` connects to an OpenAI-compatible server.
    """
    if spec == "transformers":
        from ttc_agent.backends.transformers_backend import TransformersBackend

        return TransformersBackend(model, **kwargs)
    if spec == "vllm":
        from ttc_agent.backends.vllm_backend import VLLMBackend

        return VLLMBackend(model, **kwargs)
    if spec.startswith(("http://", "https://")):
        from ttc_agent.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(spec, model, **kwargs)
    from ttc_agent.errors import InvalidRequestError

    raise InvalidRequestError(
        f"unknown backend {spec!r}; expected one of {', '.join(LOCAL_BACKENDS)} or an http(s):// server URL"
    )
