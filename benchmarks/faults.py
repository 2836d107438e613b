"""A fault-injecting HTTP proxy, for testing clients of OpenAI-compatible servers under failure.

`FaultProxy` listens on loopback, forwards each request to the real server (a `vllm serve`
process, say) and, with probability ``rate``, injects one fault instead:

- ``"429"``: Too Many Requests with a ``Retry-After`` header;
- ``"500"``: an internal server error;
- ``"reset"``: the connection is closed without an answer;
- ``"cut"``: the real answer, cut off in the middle of its body;
- ``"stall"``: no answer for ``stall_seconds`` (past the client's timeout), then a close;
- ``"malformed"``: a 200 answer whose body is not JSON.

Only ``POST`` requests under ``/v1/`` (the generations) get faults; ``/tokenize`` and health
checks pass through. Every request is logged in `FaultProxy.log` with the fault it got.

Example:
    >>> with FaultProxy("http://127.0.0.1:8000", kinds=("429", "reset"), rate=0.3, seed=0) as proxy:
    ...     backend = OpenAIBackend(proxy.url + "/v1", "smollm2")
"""

from __future__ import annotations

import random
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import httpx

from ttc_agent.errors import InvalidRequestError

FAULTS = ("429", "500", "reset", "cut", "stall", "malformed")


class _QuietServer(ThreadingHTTPServer):
    """Does not print a traceback when a client gave up (timed out) before its answer."""

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass(frozen=True)
class Hit:
    """One request the proxy saw: when, its path, and the fault it got (``None``: forwarded)."""

    time: float
    path: str
    fault: str | None


@dataclass
class FaultProxy:
    """A loopback proxy in front of ``upstream`` that injects faults (see the module docs).

    Args:
        upstream: the real server's root URL (without ``/v1``).
        kinds: the faults to draw from, uniformly.
        rate: the share of generation requests that get a fault, in [0, 1].
        seed: seeds the draws, so a run's faults can be replayed.
        retry_after: the ``Retry-After`` seconds a 429 asks for.
        stall_seconds: how long a stalled request hangs before the connection closes.
        script: the faults of the first generation requests, in order (``None``: forwarded);
            after it, ``rate`` applies.
    """

    upstream: str
    kinds: tuple[str, ...] = FAULTS
    rate: float = 0.3
    seed: int = 0
    retry_after: float = 0.2
    stall_seconds: float = 5.0
    script: tuple[str | None, ...] = ()
    log: list[Hit] = field(default_factory=list)

    def __post_init__(self) -> None:
        named = {k for k in (*self.kinds, *self.script) if k is not None}
        unknown = sorted(named - set(FAULTS))
        if unknown or not self.kinds:
            raise InvalidRequestError(f"fault kinds must be some of {list(FAULTS)}, got {list(self.kinds)}")
        if not 0 <= self.rate <= 1:
            raise InvalidRequestError(f"FaultProxy: rate must be in [0, 1], got {self.rate!r}")
        self.upstream = self.upstream.rstrip("/")
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The proxy's root URL (append ``/v1`` for an OpenAI client)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def faults(self) -> dict[str, int]:
        """How many of each fault were injected so far."""
        counts = dict.fromkeys(FAULTS, 0)
        for hit in self.log:
            if hit.fault is not None:
                counts[hit.fault] += 1
        return counts

    def _draw(self, method: str, path: str) -> str | None:
        with self._lock:
            fault = None
            if method == "POST" and path.startswith("/v1/"):
                done = sum(1 for hit in self.log if hit.path.startswith("/v1/"))
                if done < len(self.script):
                    fault = self.script[done]
                elif self._random.random() < self.rate:
                    fault = self._random.choice(self.kinds)
            self.log.append(Hit(time.time(), path, fault))
            return fault

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

        def _serve(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            fault = proxy._draw(method, self.path)
            if fault in ("429", "500", "malformed"):
                status, payload = {
                    "429": (429, b'{"error": "too many requests"}'),
                    "500": (500, b'{"error": "internal server error"}'),
                    "malformed": (200, b'{"choices": [{"message": '),
                }[fault]
                extra = {"Retry-After": f"{proxy.retry_after:g}"} if fault == "429" else {}
                self._answer(status, payload, extra)
                return
            if fault == "reset":
                self._reset()
                return
            if fault == "stall":
                time.sleep(proxy.stall_seconds)
                self._reset()
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")}
            try:
                response = httpx.request(method, proxy.upstream + self.path, content=body, headers=headers, timeout=600)
            except httpx.HTTPError:
                self._reset()
                return
            if fault == "cut":
                self.send_response(response.status_code)
                self.send_header("Content-Type", response.headers.get("content-type", "application/json"))
                self.send_header("Content-Length", str(len(response.content)))
                self.end_headers()
                self.wfile.write(response.content[: len(response.content) // 2])
                self.wfile.flush()
                self._reset()
                return
            self._answer(response.status_code, response.content, {}, response.headers.get("content-type"))

        def _answer(self, status: int, payload: bytes, extra: dict[str, str], kind: str | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind or "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)

        def _reset(self) -> None:
            """Close the connection at once (an RST, not an orderly close)."""
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

    return Handler
