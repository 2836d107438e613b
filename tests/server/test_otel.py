"""OpenTelemetry around `ttc-agent serve`: a request's server span continues the caller's
``traceparent``, the backend request carries the same trace on, a malformed ``traceparent``
starts a fresh trace, and the metrics are OpenTelemetry instruments too."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fakes import bundle_for
from fastapi.testclient import TestClient
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.trace import SpanKind

from ttc_agent.backends import OpenAIBackend
from ttc_agent.budgets import ReservationPool
from ttc_agent.nodes import TTCEngine
from ttc_agent.server import ChatService, create_app

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
ASK = [{"role": "user", "content": "What is 345 + 678?"}]


class Upstream:
    """An OpenAI-compatible upstream on loopback (vLLM's /tokenize and chat completions) that
    keeps the headers of every request it gets."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.path.endswith("/tokenize"):
                    body = {"count": 9, "tokens": list(range(9)), "max_model_len": 2048}
                else:
                    body = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                            "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": "= 1023"},
                                         "logprobs": {"content": [{"token": t, "logprob": -0.1, "bytes": None,
                                                                   "top_logprobs": []} for t in ("=", " 1023")]}}],
                            "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}  # fmt: skip
                payload = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def served(otel_spans):
    upstream = Upstream()
    reader = InMemoryMetricReader()
    store = ReservationPool()
    engine = TTCEngine(OpenAIBackend(upstream.url, "m", max_retries=0), bundle_for(None), pool=store)
    app = create_app(ChatService(engine, store, model_name="ttc"), meter_provider=MeterProvider([reader]))
    otel_spans.clear()
    yield TestClient(app), upstream, otel_spans, reader
    upstream.server.shutdown()


def test_the_server_span_the_call_span_and_the_backend_request_share_the_callers_trace(served):
    client, upstream, spans, _ = served
    reply = client.post("/v1/chat/completions", json={"model": "ttc", "messages": ASK, "ttc": {"strategy": "greedy"}},
                        headers={"traceparent": TRACEPARENT})  # fmt: skip
    assert reply.status_code == 200 and "1023" in reply.json()["choices"][0]["message"]["content"]
    finished = spans.get_finished_spans()
    server = [s for s in finished if s.kind == SpanKind.SERVER]
    call = [s for s in finished if s.name.startswith("chat ")]
    assert server and call
    assert {format(s.context.trace_id, "032x") for s in server + call} == {TRACE_ID}
    sent = [h["traceparent"] for h in upstream.headers if "traceparent" in h]
    assert sent and all(t.split("-")[1] == TRACE_ID for t in sent)  # the backend's requests joined the trace
    assert {t.split("-")[2] for t in sent} <= {format(s.context.span_id, "016x") for s in finished}


def test_a_malformed_traceparent_starts_a_fresh_trace(served):
    client, upstream, spans, _ = served
    reply = client.post("/v1/chat/completions", json={"model": "ttc", "messages": ASK, "ttc": {"strategy": "greedy"}},
                        headers={"traceparent": "00-not-a-trace-id-01"})  # fmt: skip
    assert reply.status_code == 200
    (server,) = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert server.parent is None and format(server.context.trace_id, "032x") != TRACE_ID
    assert all(h["traceparent"].split("-")[1] == format(server.context.trace_id, "032x")
               for h in upstream.headers if "traceparent" in h)  # fmt: skip


def test_the_metrics_are_opentelemetry_instruments_too(served):
    client, _, _, reader = served
    for _ in range(2):
        assert client.post("/v1/chat/completions", json={"model": "ttc", "messages": ASK}).status_code == 200
    assert client.post("/v1/chat/completions", json={"model": "nope", "messages": ASK}).status_code == 404
    points = {
        m.name: m.data.data_points
        for rm in reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if sm.scope.name == "ttc_agent.server"
    }
    by_status = {p.attributes["http.response.status_code"]: p.value for p in points["ttc.requests"]}
    assert by_status == {200: 2, 404: 1}
    assert sum(p.count for p in points["ttc.request.duration"]) == 2
    assert sum(p.value for p in points["ttc.tokens"] if p.attributes["ttc.token.kind"] == "completion") == 4
