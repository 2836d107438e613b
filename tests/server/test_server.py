"""`ttc-agent serve` driven by the official openai client and by LangChain's ChatOpenAI, on the
embedded model: chat, streaming, tools, sessions with budgets, auth and every refusal."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from fakes import bundle_for
from uvicorn_server import Running

from ttc_agent.budgets import ReservationPool
from ttc_agent.nodes import TTCEngine
from ttc_agent.server import APIError, ChatService, create_app

pytestmark = pytest.mark.slow
KEYS = ("key-a", "key-b")
ASK = [{"role": "user", "content": "What is 23 + 19?"}]


def make_service(tf_backend, store=None) -> ChatService:
    store = store or ReservationPool()
    engine = TTCEngine(tf_backend, bundle_for(tf_backend.fingerprint()), pool=store)
    return ChatService(engine, store, model_name="ttc", max_tokens=64)


@pytest.fixture(scope="module")
def server(tf_backend) -> Iterator[tuple[str, ChatService]]:
    service = make_service(tf_backend)
    with Running(create_app(service, KEYS, max_request_bytes=20_000)) as url:
        yield url, service


def client(url: str, key: str = "key-a") -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=120)


def test_chat_answers_with_usage_and_the_decision(server):
    url, _ = server
    reply = client(url).chat.completions.create(model="ttc", messages=ASK, temperature=0)
    ttc = reply.model_extra["ttc"]
    assert reply.choices[0].message.content and reply.choices[0].finish_reason in ("stop", "length")
    assert ttc["choice"] == "greedy", "temperature 0 allows only greedy"
    assert reply.usage.total_tokens == ttc["actual"]["total_tokens"] > reply.usage.prompt_tokens > 0
    assert {c["strategy"] for c in ttc["candidates"]} == {"greedy", "best_of_n(4, select=majority)"}


def test_the_model_name_can_force_a_strategy_and_models_lists_them(server):
    url, _ = server
    ids = [m.id for m in client(url).models.list()]
    assert ids == ["ttc", "ttc:greedy", "ttc:best_of_n(4, select=majority)"]
    reply = client(url).chat.completions.create(model="ttc:best_of_n(4, select=majority)", messages=ASK)
    assert reply.model_extra["ttc"]["choice"] == "best_of_n(4, select=majority)"


def test_streaming_gives_the_same_reply_in_chunks_and_the_usage_last(server):
    url, _ = server
    stream = client(url).chat.completions.create(
        model="ttc", messages=ASK, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    parts = list(stream)
    text = "".join(p.choices[0].delta.content or "" for p in parts if p.choices)
    assert parts[0].choices[0].delta.role == "assistant"
    assert len({p.id for p in parts}) == 1 and len({p.created for p in parts}) == 1, "one id for the whole stream"
    assert text and parts[-1].usage.completion_tokens > 0 and parts[-1].choices == []
    finished = [p for p in parts if p.choices and p.choices[0].finish_reason]
    assert len(finished) == 1 and finished[0].model_extra["ttc"]["choice"] == "greedy"


def test_a_forced_tool_call_comes_back_as_openai_tool_calls(server):
    url, _ = server
    tool = {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two integers.",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },  # fmt: skip
        },
    }
    reply = client(url).chat.completions.create(
        model="ttc", messages=ASK, tools=[tool], tool_choice={"type": "function", "function": {"name": "add"}}
    )
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls" and call.function.name == "add"


def test_chat_openai_from_langchain(server):
    from langchain_openai import ChatOpenAI

    url, _ = server
    chat = ChatOpenAI(base_url=url + "/v1", api_key="key-b", model="ttc", temperature=0, max_retries=0)
    message = chat.invoke("What is 2 + 2?")
    assert message.content and message.usage_metadata["total_tokens"] > 0
    streamed = list(chat.stream("What is 2 + 2?"))
    assert "".join(c.content for c in streamed) == message.content, "greedy twice: the same reply"


def test_a_session_budget_is_shared_by_its_requests_and_ends_with_402(server):
    url, service = server
    admin = httpx.Client(base_url=url, headers={"Authorization": "Bearer key-a"})
    made = admin.post("/v1/sessions", json={"id": "s-budget", "max_tokens": 150})
    assert made.status_code == 201 and made.json()["tokens_left"] == 150
    c = client(url)
    spent, statuses = 0, []
    for _ in range(6):
        try:
            reply = c.chat.completions.create(model="ttc", messages=ASK, temperature=0, user="s-budget")
        except openai.APIStatusError as exc:
            statuses.append(exc.status_code)
            assert exc.body["code"] == "budget_exhausted_tokens" and "tokens" in exc.body["message"]
            break
        spent += reply.usage.total_tokens
        assert reply.model_extra["ttc"]["session"]["tokens_left"] == 150 - spent
    assert statuses == [402] and 0 < spent <= 150
    state = admin.get("/v1/sessions/s-budget").json()
    assert state["tokens"] == spent and state["in_flight"] == 0
    other = httpx.get(url + "/v1/sessions/s-budget", headers={"Authorization": "Bearer key-b"})
    assert other.status_code == 404, "a session is visible only to the key that made it"
    with pytest.raises(openai.NotFoundError, match="no session"):
        client(url, "key-b").chat.completions.create(model="ttc", messages=ASK, user="s-budget")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n": 2}, openai.BadRequestError, "n must be 1"),
        ({"extra_body": {"ttc": {"strategy": "beam(width=9, expand=9, max_steps=9)"}}}, openai.BadRequestError,
         "not in the menu"),
        ({"extra_body": {"ttc": {"lambda_tokenz": 1}}}, openai.BadRequestError, "lambda_tokenz"),
        ({"model": "gpt-4o"}, openai.NotFoundError, "not served here"),
        ({"max_tokens": 10_000}, openai.BadRequestError, "over this server's limit"),
        ({"user": "nobody"}, openai.NotFoundError, "no session 'nobody'"),
        ({"messages": [{"role": "user", "content": "x" * 30_000}]}, openai.APIStatusError, "over the limit"),
    ],
)  # fmt: skip
def test_bad_requests_get_typed_openai_errors(server, kwargs, error, match):
    url, _ = server
    request = {"model": "ttc", "messages": ASK, **kwargs}
    with pytest.raises(error, match=match):
        client(url).chat.completions.create(**request)


def test_keys_are_checked_before_any_work_and_bodies_must_be_json(server):
    url, _ = server
    with pytest.raises(openai.AuthenticationError):
        client(url, "wrong").chat.completions.create(model="ttc", messages=ASK)
    assert httpx.get(url + "/v1/models").status_code == 401
    assert httpx.get(url + "/health").json() == {"status": "ok"}
    bad = httpx.post(url + "/v1/chat/completions", content=b"{not json", headers={"Authorization": "Bearer key-a"})
    assert bad.status_code == 400 and "not JSON" in bad.json()["error"]["message"]


def test_a_client_that_leaves_mid_stream_has_its_spend_charged_and_nothing_held(server):
    url, service = server
    headers = {"Authorization": "Bearer key-a", "X-TTC-Session": "s-leave"}
    httpx.post(url + "/v1/sessions", json={"id": "s-leave", "max_tokens": 5000}, headers=headers)
    body = {"model": "ttc:best_of_n(4, select=majority)", "messages": ASK, "stream": True}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, headers=headers, timeout=60) as r:
        next(r.iter_lines())  # the role chunk: the call is running; leave now
    deadline = time.monotonic() + 120
    while (state := httpx.get(url + "/v1/sessions/s-leave", headers=headers).json())["calls"] < 1:
        assert time.monotonic() < deadline, state
        time.sleep(0.5)
    assert state["in_flight"] == 0 and state["tokens"] > 0


def test_an_unreachable_budget_store_is_a_503_never_an_unbudgeted_answer(tf_backend):
    from postgres_server import LocalPostgres, postgres_bin

    from ttc_agent.budgets import PostgresStore

    if postgres_bin() is None:
        pytest.skip("Postgres is not installed here (Debian: apt-get install postgresql)")
    with LocalPostgres() as pg:
        store = PostgresStore(pg.dsn, connect_timeout=2)
        service = make_service(tf_backend, store)
        with Running(create_app(service)) as url:
            c = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
            httpx.post(url + "/v1/sessions", json={"id": "s1", "max_tokens": 1000}).raise_for_status()
            assert c.chat.completions.create(model="ttc", messages=ASK, temperature=0, user="s1").choices
            pg.stop()  # the database goes away
            with pytest.raises(openai.APIStatusError) as err:
                c.chat.completions.create(model="ttc", messages=ASK, temperature=0, user="s1")
    assert err.value.status_code == 503 and err.value.body["type"] == "budget_store_unavailable"


def test_bad_sessions_are_refused_and_a_request_closed_before_it_ran_gives_its_reservation_back(tf_backend):
    from ttc_agent.server.protocol import ChatRequest
    from ttc_agent.server.service import account_key, session_budget

    service = make_service(tf_backend)
    for bad, match in (({"id": "b", "on_exhausted": "ask"}, "no one to ask"), ({"id": "b", "max_tokens": -5}, "max_tokens"),
                       ({"id": "b", "colour": 1}, "unknown session fields"), ({"id": ""}, "non-empty")):  # fmt: skip
        with pytest.raises(APIError, match=match):
            service.create_session("me", bad)
    service.create_session("me", {"id": "s", "max_tokens": 1000})
    with pytest.raises(APIError, match="already exists") as dup:
        service.create_session("me", {"id": "s", "max_tokens": 5})
    assert dup.value.status == 409
    session = service.session("me", "s")
    prepared = service.prepare("me", ChatRequest(model="ttc", messages=ASK), "s")
    key = account_key(session_budget(session))
    assert service.store.spend(key).in_flight == 1, "the decision reserved its caps"
    prepared.steps.close()  # the stream's client left before the call started
    assert service.store.spend(key) == type(service.store.spend(key))(0, 0.0, 0, 0), "nothing held, nothing booked"
