"""The HTTP routes of ``ttc-agent serve`` (FastAPI): ``/health`` (``/live``, ``/ready``),
``/metrics``, ``/v1/models`` (and ``/v1/models/{id}``), ``/v1/chat/completions`` (streaming too)
and ``/v1/sessions``.

Every ``/v1`` route checks the API key first (401 before any work) and answers errors in
OpenAI's format. A request body over ``max_request_bytes`` is a 413 before it is parsed. Every
chat response carries ``x-request-id`` (the client's, or a new one), the per-sample cap
headers, ``x-ttc-ignored`` naming the request fields the engine decided instead, and in a
session ``x-ttc-session-remaining-tokens`` / ``-seconds``; a stream sends an SSE comment every
``keep_alive_seconds`` while its strategy runs, so proxies do not time it out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from ttc_agent.extras import needs_extra
from ttc_agent.records import CapRecord

with needs_extra("serve", "ttc_agent.server"):
    import anyio
    from fastapi import Depends, FastAPI, Request, Security
    from fastapi.responses import JSONResponse, Response
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from sse_starlette import EventSourceResponse, ServerSentEvent

from ttc_agent.server.metrics import CONTENT_TYPE_LATEST, ServerMetrics
from ttc_agent.server.protocol import (
    APIError,
    ChatRequest,
    SessionRequest,
    body_schema,
    chunks,
    completion,
    json_object,
    parse_request,
    role_chunk,
)
from ttc_agent.server.service import ChatService

log = logging.getLogger("ttc_agent.server")
T = TypeVar("T")
#: The owner of every session on a server started without API keys.
ANONYMOUS = "anonymous"


def owner_of(key: str) -> str:
    """The owner id of an API key: a digest, so the store never holds a key."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def create_app(
    service: ChatService,
    api_keys: Sequence[str] = (),
    *,
    max_request_bytes: int = 1_000_000,
    keep_alive_seconds: float = 15.0,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> FastAPI:
    """The server's FastAPI app. ``api_keys`` empty: no authentication (loopback use only).

    OpenTelemetry: each request is a server span (FastAPI's instrumentation; a ``traceparent``
    header continues the caller's trace), the engine's call spans and the backend requests (which
    carry ``traceparent`` on) are its children, and the metrics are also OpenTelemetry
    instruments; all go to the global providers unless ``tracer_provider``/``meter_provider``
    are given."""
    app = FastAPI(title="ttc-agent", summary="OpenAI-compatible chat completions with test-time compute")
    FastAPIInstrumentor.instrument_app(app, tracer_provider=tracer_provider, meter_provider=meter_provider,
                                       excluded_urls="/health,/health/live,/health/ready,/metrics")  # fmt: skip
    keys = [k.encode() for k in api_keys]
    metrics = ServerMetrics(meter_provider)
    app.state.metrics = metrics

    bearer = HTTPBearer(auto_error=False, description="An API key of --api-keys-file or $TTC_AGENT_API_KEYS.")

    def owner(credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> str:
        """The caller's owner id from its bearer key (anonymous when the server has no keys)."""
        if not keys:
            return ANONYMOUS
        token = "" if credentials is None else credentials.credentials
        if not any(hmac.compare_digest(token.encode(), k) for k in keys):
            raise APIError(401, "a valid API key is required (Authorization: Bearer KEY)", type="authentication_error",
                           code="invalid_api_key")  # fmt: skip
        return owner_of(token)

    async def body_of(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_request_bytes:
            raise APIError(413, f"the request body has {declared} bytes, over the limit of {max_request_bytes}")
        body = b""
        async for part in request.stream():
            body += part
            if len(body) > max_request_bytes:
                raise APIError(413, f"the request body is over the limit of {max_request_bytes} bytes")
        return body

    async def in_thread(fn: Callable[[], T]) -> T:
        # Not abandoned on cancel: a request whose client left still settles its spend.
        return await anyio.to_thread.run_sync(fn)

    def request_id(request: Request) -> str:
        return request.headers.get("x-request-id") or f"req-{uuid.uuid4().hex}"

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        if request.url.path == "/v1/chat/completions":
            metrics.observe_status(exc.status)
        return JSONResponse(exc.body(), status_code=exc.status, headers={"x-request-id": request_id(request)})

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        metrics.observe_status(500)
        return JSONResponse(APIError(500, f"internal error: {type(exc).__name__}", type="server_error").body(), 500,
                            headers={"x-request-id": request_id(request)})  # fmt: skip

    @app.get("/health")
    @app.get("/health/live")
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/health/ready", response_model=None)
    async def ready() -> JSONResponse:
        """Readiness: the budget store and the backend both answer (503 naming the one that does not)."""
        checks = await in_thread(service.readiness)
        status = 200 if all(v == "ok" for v in checks.values()) else 503
        return JSONResponse({"status": "ok" if status == 200 else "unavailable", "checks": checks}, status_code=status)

    @app.get("/metrics", response_model=None)
    async def prometheus() -> Response:
        """Prometheus metrics: requests, strategies, tokens, latency, out of distribution, drift."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    def model_object(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 0, "owned_by": "ttc-agent"}

    @app.get("/v1/models")
    async def models(who: str = Depends(owner)) -> dict[str, Any]:
        return {"object": "list", "data": [model_object(m) for m in service.models()]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str, who: str = Depends(owner)) -> dict[str, Any]:
        if model_id not in service.models():
            raise APIError(404, f"model {model_id!r} is not served here; models: {service.models()}",
                           code="model_not_found", param="model")  # fmt: skip
        return model_object(model_id)

    @app.post("/v1/sessions", status_code=201, openapi_extra=body_schema(SessionRequest))
    async def create_session(request: Request, who: str = Depends(owner)) -> dict[str, Any]:
        body = json_object(await body_of(request))
        return await in_thread(lambda: service.create_session(who, body))

    @app.get("/v1/sessions/{sid}")
    async def get_session(sid: str, who: str = Depends(owner)) -> dict[str, Any]:
        return await in_thread(lambda: service.describe(service.session(who, sid)))

    @app.post("/v1/chat/completions", response_model=None, openapi_extra=body_schema(ChatRequest))
    async def chat(request: Request, who: str = Depends(owner)) -> Response:
        req = parse_request(await body_of(request))
        sid = request.headers.get("x-ttc-session") or req.user
        started = time.perf_counter()
        prepared = await in_thread(lambda: service.prepare(who, req, sid))
        headers = {"x-request-id": request_id(request), **cap_headers(prepared.ticket.cap)}
        ignored = [] if service.strict else req.ignored()
        if ignored:
            headers["x-ttc-ignored"] = ", ".join(ignored)
        if prepared.ticket.ood is not None and prepared.ticket.ood["novel"]:
            headers["x-ttc-out-of-distribution"] = (
                f"score {prepared.ticket.ood['score']:g} > threshold {prepared.ticket.ood['threshold']:g}: "
                "accuracy taken as the bundle's average per strategy"
            )
        if not req.stream:
            message, ttc = await in_thread(lambda: service.run(prepared))
            metrics.observe_record(ttc)
            metrics.observe_status(200, time.perf_counter() - started)
            return JSONResponse(completion(message, req.model, ttc), headers={**headers, **session_headers(ttc)})
        include_usage = bool(req.stream_options and req.stream_options.include_usage)

        async def events() -> AsyncIterator[ServerSentEvent]:
            ran = False
            try:
                first = role_chunk(req.model)
                yield ServerSentEvent(json.dumps(first))
                ran = True
                try:
                    message, ttc = await in_thread(lambda: service.run(prepared))
                except APIError as exc:
                    metrics.observe_status(exc.status)
                    yield ServerSentEvent(json.dumps(exc.body()))
                else:
                    metrics.observe_record(ttc)
                    metrics.observe_status(200, time.perf_counter() - started)
                    for c in chunks(message, first, ttc, include_usage):
                        yield ServerSentEvent(json.dumps(c))
                yield ServerSentEvent("[DONE]")
            finally:
                if not ran:  # the client left before the call started: give its reservation back
                    prepared.steps.close()

        def keep_alive() -> ServerSentEvent:  # a comment that keeps proxies from timing the stream out
            return ServerSentEvent(comment=f"ttc-agent is running {prepared.ticket.decision.spec}")

        return EventSourceResponse(events(), headers=headers, ping=keep_alive_seconds, ping_message_factory=keep_alive,
                                   sep="\n")  # fmt: skip

    return app


def session_headers(ttc: dict[str, Any]) -> dict[str, str]:
    """What a session has left after the request, as headers (none outside a session)."""
    session = ttc.get("session")
    if not session:
        return {}
    out = {}
    for unit in ("tokens", "seconds"):
        left = session.get(f"{unit}_left")
        if left is not None:
            out[f"x-ttc-session-remaining-{unit}"] = f"{left:g}"
    return out


def cap_headers(cap: CapRecord | None) -> dict[str, str]:
    """Response headers naming the per-sample cap the request's samples run with and the one
    the probe bundle was traced at, with an ``x-ttc-warning`` when the first is higher (the
    predictions behind the decision were extrapolated)."""
    if cap is None:
        return {}
    headers = {"x-ttc-max-tokens": str(cap["max_tokens"]), "x-ttc-traced-max-tokens": str(cap["traced_max_tokens"])}
    if cap["beyond_traced"]:
        headers["x-ttc-warning"] = (
            f"max_tokens {cap['max_tokens']} is beyond the {cap['traced_max_tokens']} tokens per sample the probe "
            "bundle was traced at: its token and seconds predictions are extrapolated"
        )
    return headers
