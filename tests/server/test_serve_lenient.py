"""`ttc-agent serve` is as lenient as vLLM's server: OpenAI's sampling fields are ignored and named,
``response_format`` gives a structured answer, ``--strict`` refuses; plus readiness, a request
id, session headers, keep-alive comments and Prometheus metrics counted from real calls."""

from __future__ import annotations

import json

import openai
import pytest
from fakes import ScriptedBackend, bundle_for, texts
from fastapi.testclient import TestClient

from ttc_agent.backends.base import Completion
from ttc_agent.budgets import ReservationPool
from ttc_agent.nodes import TTCEngine
from ttc_agent.server import ChatService, SessionDefaults, create_app

ASK = [{"role": "user", "content": "What is 345 + 678?"}]
SAMPLING = {
    "temperature": 0.7,
    "top_p": 0.9,
    "seed": 1,
    "frequency_penalty": 0.1,
    "metadata": {"team": "a"},
    "store": False,
}
SCHEMA = {"type": "json_schema", "json_schema": {"name": "Answer", "schema": {
    "type": "object", "properties": {"value": {"type": "integer"}}, "required": ["value"]}}}  # fmt: skip


def app_for(backend=None, *, strict=False, defaults=None, keep_alive=15.0):
    store = ReservationPool()
    backend = backend or ScriptedBackend(texts("345 + 678 = 1023. The answer is 1023.", tokens=12))
    engine = TTCEngine(backend, bundle_for(None), pool=store)
    service = ChatService(engine, store, model_name="ttc", strict=strict, defaults=defaults)
    return create_app(service, keep_alive_seconds=keep_alive)


def test_sampling_fields_are_ignored_and_named_and_strict_refuses_them():
    client = TestClient(app_for())
    lenient = client.post("/v1/chat/completions", json={"model": "ttc", "messages": ASK, **SAMPLING})
    assert lenient.status_code == 200 and "1023" in lenient.json()["choices"][0]["message"]["content"]
    named = lenient.headers["x-ttc-ignored"].split(", ")
    assert set(named) == {"temperature", "top_p", "seed", "frequency_penalty", "metadata", "store"}
    assert lenient.headers["x-request-id"].startswith("req-")
    strict = TestClient(app_for(strict=True))
    for field, value in [("top_p", 0.5), ("seed", 3), ("temperature", 0.7), ("made_up_field", 1)]:
        refused = strict.post("/v1/chat/completions", json={"model": "ttc", "messages": ASK, field: value})
        assert refused.status_code == 400 and refused.json()["error"]["param"] == field, field
    ok = strict.post("/v1/chat/completions", json={"model": "ttc", "messages": ASK, "temperature": 0},
                     headers={"x-request-id": "mine-1"})  # fmt: skip
    assert ok.status_code == 200 and "x-ttc-ignored" not in ok.headers and ok.headers["x-request-id"] == "mine-1"
    assert client.post("/v1/chat/completions", json={"model": "ttc", "messages": ASK, "n": 2}).status_code == 400


def schema_backend():
    def make(prompt, params, i):
        call = '<tool_call>{"name": "Answer", "arguments": {"value": 1023}}</tool_call>'
        prefix = prompt.messages[-1]["content"] if prompt.continues_assistant else ""
        text = call[len(prefix) :] if call.startswith(prefix) else call
        return Completion(text, "stop", 14, (-0.3,) * 14 if params.logprobs else None)

    return ScriptedBackend(make)


def test_response_format_json_schema_answers_with_the_object_as_content():
    client = TestClient(app_for(schema_backend()))
    reply = client.post("/v1/chat/completions", json={"model": "ttc", "messages": ASK, "response_format": SCHEMA})
    assert reply.status_code == 200, reply.text
    message = reply.json()["choices"][0]["message"]
    assert json.loads(message["content"]) == {"value": 1023} and "tool_calls" not in message
    plain = client.post("/v1/chat/completions", json={"model": "ttc", "messages": ASK,
                                                      "response_format": {"type": "json_object"}})  # fmt: skip
    assert plain.status_code == 200 and plain.headers["x-ttc-ignored"] == "response_format"
    both = client.post("/v1/chat/completions", json={"model": "ttc", "messages": ASK, "response_format": SCHEMA,
                                                     "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]})  # fmt: skip
    assert both.status_code == 400 and both.json()["error"]["param"] == "response_format"
    bad = client.post("/v1/chat/completions", json={"model": "ttc", "messages": ASK,
                                                    "response_format": {"type": "json_schema"}})  # fmt: skip
    assert bad.status_code == 400 and "json_schema" in bad.json()["error"]["message"]


def test_models_health_sessions_and_metrics_count_the_calls_made():
    client = TestClient(app_for(defaults=SessionDefaults(max_tokens=5000)))
    assert client.get("/v1/models/ttc").json()["id"] == "ttc"
    assert client.get("/v1/models/ttc:greedy").status_code == 200
    assert client.get("/v1/models/gpt-9").status_code == 404
    assert client.get("/health/live").json() == {"status": "ok"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {"store": "ok", "backend": "ok"}
    spent = 0
    for _ in range(3):
        r = client.post("/v1/chat/completions", json={"model": "ttc:greedy", "messages": ASK, "user": "s-1"})
        spent += r.json()["usage"]["total_tokens"]
        assert int(r.headers["x-ttc-session-remaining-tokens"]) == 5000 - spent
    client.post("/v1/chat/completions", json={"model": "ttc", "messages": ASK, "n": 3})  # a 400
    text = client.get("/metrics").text
    assert 'ttc_requests_total{status="200"} 3.0' in text and 'ttc_requests_total{status="400"} 1.0' in text
    assert 'ttc_strategy_choices_total{strategy="greedy"} 3.0' in text
    completion = sum(
        float(line.split()[-1]) for line in text.splitlines() if line.startswith('ttc_tokens_total{kind="completion"}')
    )
    assert completion == 3 * 12
    assert 'ttc_prediction_log_ratio_count{strategy="greedy",unit="tokens"} 3.0' in text
    assert "ttc_request_seconds_count 3.0" in text


def test_readiness_names_a_backend_that_does_not_answer():
    class Down(ScriptedBackend):
        def count_tokens(self, prompt):
            raise ConnectionError("connection refused")

    client = TestClient(app_for(Down(texts("4"))))
    ready = client.get("/health/ready")
    assert ready.status_code == 503 and "connection refused" in ready.json()["checks"]["backend"]


def test_a_long_stream_sends_keep_alive_comments_while_its_strategy_runs():
    import time

    def slow(prompt, params, i):
        time.sleep(0.4)
        return Completion("The answer is 1023.", "stop", 6, (-0.3,) * 6 if params.logprobs else None)

    client = TestClient(app_for(ScriptedBackend(slow), keep_alive=0.1))
    with client.stream(
        "POST", "/v1/chat/completions", json={"model": "ttc:greedy", "messages": ASK, "stream": True}
    ) as r:
        lines = [line for line in r.iter_lines() if line]
    comments = [line for line in lines if line.startswith(":")]
    assert comments and "running greedy" in comments[0]
    data = [line for line in lines if line.startswith("data: ")]
    # The last event is [DONE]; a keep-alive comment may still race past it (clients skip comments).
    assert data[-1] == "data: [DONE]" and any("1023" in line for line in data)
    assert all(line.startswith(":") for line in lines[lines.index("data: [DONE]") + 1 :])


@pytest.mark.slow
def test_official_clients_with_their_usual_fields_get_answers_on_the_embedded_model(tf_backend):
    from langchain_openai import ChatOpenAI
    from uvicorn_server import Running

    from ttc_agent.demo import shipped_probes

    store = ReservationPool()
    engine = TTCEngine(tf_backend, shipped_probes(tf_backend), pool=store)
    with Running(create_app(ChatService(engine, store, model_name="ttc"))) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="ttc:greedy", messages=ASK, temperature=0.7, top_p=0.9, seed=1, max_tokens=48,
            response_format={"type": "json_object"},
        )  # fmt: skip
        reply = raw.parse()
        assert reply.choices[0].message.content and set(raw.headers["x-ttc-ignored"].split(", ")) >= {"top_p", "seed"}
        chat = ChatOpenAI(base_url=f"{url}/v1", api_key="unused", model="ttc:greedy", max_retries=0, max_tokens=48)
        assert chat.invoke("What is 2 + 3?").content


def test_the_openapi_schema_types_the_bodies_and_names_the_bearer_scheme():

    store = ReservationPool()
    engine = TTCEngine(ScriptedBackend(texts("= 1023", tokens=8)), bundle_for(None), pool=store)
    client = TestClient(create_app(ChatService(engine, store, model_name="ttc"), api_keys=["k-1"]))
    spec = client.get("/openapi.json").json()
    chat = spec["paths"]["/v1/chat/completions"]["post"]
    body = chat["requestBody"]["content"]["application/json"]["schema"]
    assert {"model", "messages"} <= set(body["required"]) and "include_usage" in str(
        body["properties"]["stream_options"]
    )
    assert (
        chat["security"] == [{"HTTPBearer": []}]
        and spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    )
    session = spec["paths"]["/v1/sessions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert session["properties"]["on_exhausted"]["enum"] == ["end", "error"]
    ask = {"model": "ttc", "messages": ASK}
    assert client.post("/v1/chat/completions", json=ask).status_code == 401
    assert client.post("/v1/chat/completions", json=ask, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.post("/v1/chat/completions", json=ask, headers={"Authorization": "Bearer k-1"}).status_code == 200


def test_metrics_scraped_while_requests_run_never_lock_up_and_count_every_call():
    """Sixteen chat requests on eight threads against a real uvicorn server while another thread
    scrapes /metrics as fast as it answers: everything finishes, and the counts add up."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    from uvicorn_server import Running

    def slowish(prompt, params, i):
        time.sleep(0.05)
        return Completion(
            "345 + 678 = 1023. The answer is 1023.", "stop", 12, (-0.2,) * 12 if params.logprobs else None
        )

    scrapes: list[int] = []
    with Running(app_for(ScriptedBackend(slowish))) as url:
        done = threading.Event()

        def scrape() -> None:
            while not done.is_set():
                scrapes.append(httpx.get(f"{url}/metrics", timeout=10).status_code)

        scraper = threading.Thread(target=scrape)
        scraper.start()
        ask = {"model": "ttc:greedy", "messages": ASK}
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: httpx.post(f"{url}/v1/chat/completions", json=ask, timeout=30).status_code,
                                  range(16)))  # fmt: skip
        done.set()
        scraper.join(timeout=30)
        text = httpx.get(f"{url}/metrics", timeout=10).text
    assert codes == [200] * 16 and not scraper.is_alive() and scrapes and set(scrapes) == {200}
    assert 'ttc_requests_total{status="200"} 16.0' in text and "ttc_request_seconds_count 16.0" in text
