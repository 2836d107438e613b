"""OpenAIBackend against a real `vllm serve` process and against scripted loopback servers."""

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from conftest import CHAT

from ttc_agent.backends import OpenAIBackend, TransformersBackend
from ttc_agent.backends.vllm_server import free_port
from ttc_agent.errors import BackendResponseError, BackendTimeoutError, BackendUnavailableError

# -- a real vllm serve ------------------------------------------------------------------------


@pytest.mark.slow
def test_real_server_chat_counts_match_local_model(vllm_server, tf_backend: TransformersBackend):
    backend = OpenAIBackend(vllm_server, timeout=60)
    assert backend.model_name == "smollm2"
    assert backend.count_tokens(CHAT) == tf_backend.count_tokens(CHAT)
    assert backend.render(CHAT) == tf_backend.render(CHAT)
    gen = backend.generate(CHAT, max_tokens=12, logprobs=True)
    local = tf_backend.generate(CHAT, max_tokens=12)
    assert gen.text == local.text and gen.prompt_tokens == local.prompt_tokens
    assert gen.completion_tokens == local.completion_tokens
    assert len(gen.completions[0].token_logprobs) == gen.completion_tokens


@pytest.mark.slow
def test_a_local_tokenizer_counts_as_the_server_does_without_asking_it(vllm_server, embedded_dir):
    server = OpenAIBackend(vllm_server, timeout=60)
    local = OpenAIBackend(vllm_server, timeout=60, tokenizer=embedded_dir)
    partial = CHAT + [{"role": "assistant", "content": "Step 1:"}]
    for prompt in (CHAT, partial, "Count: 1, 2, 3,"):
        assert local.count_tokens(prompt) == server.count_tokens(prompt), prompt
        assert local.render(prompt) == server.render(prompt), prompt
    local._http.close()  # no /tokenize request may go out now
    assert local.count_tokens(CHAT) > 0
    assert local.generate(partial, max_tokens=8).results[0].prompt_tokens == local.count_tokens(partial)


@pytest.mark.slow
def test_real_server_samples_continuation_and_raw_prompts(vllm_server):
    backend = OpenAIBackend(vllm_server, timeout=60)
    gen = backend.generate(CHAT, n=4, temperature=1.0, max_tokens=10, seed=3)
    assert len(gen.completions) == 4 and gen.completions[0].token_logprobs is None
    # The completion token counts add up to the server's own usage figure.
    raw = httpx.post(
        vllm_server + "/chat/completions",
        json={"model": "smollm2", "messages": CHAT, "n": 4, "temperature": 1.0, "max_tokens": 10, "seed": 3},
        timeout=60,
    ).json()
    assert gen.completion_tokens == raw["usage"]["completion_tokens"]
    partial = CHAT + [{"role": "assistant", "content": "Step 1:"}]
    assert backend.render(partial).endswith("Step 1:")
    cont = backend.generate([partial, partial], max_tokens=8, stop=["\n"])
    numbers = backend.generate("Count: 1, 2, 3, 4,", max_tokens=12, stop=[","])
    assert numbers.completions[0].stop_string == ","
    assert len(cont.results) == 2 and cont.results[0].prompt_tokens == backend.count_tokens(partial)
    text = asyncio.run(backend.agenerate("The capital of France is", max_tokens=6))
    assert text.prompt_tokens == backend.count_tokens("The capital of France is")
    assert 0 < text.completion_tokens <= 6


# -- scripted servers: retries, garbage, timeouts, a server that is down -----------------------

CHAT_OK = {
    "id": "x",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "42"},
            "finish_reason": "stop",
            "logprobs": {
                "content": [
                    {"token": "4", "logprob": -0.1, "bytes": None, "top_logprobs": []},
                    {"token": "2", "logprob": -0.2, "bytes": None, "top_logprobs": []},
                ]
            },
        }
    ],
    "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
}


class Scripted:
    """A loopback HTTP server answering POSTs from a script of (status, headers, body) steps."""

    def __init__(self, script, delay=0.0):
        self.script, self.delay, self.hits = list(script), delay, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                outer.hits.append((time.monotonic(), self.path))
                self.rfile.read(int(self.headers.get("content-length", 0)))
                time.sleep(outer.delay)
                status, headers, body = outer.script.pop(0) if len(outer.script) > 1 else outer.script[0]
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for k, v in {"content-type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def scripted():
    servers = []

    def make(script, delay=0.0):
        servers.append(Scripted(script, delay))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def test_retries_429_honouring_retry_after_then_succeeds(scripted):
    srv = scripted(
        [(429, {"retry-after": "0.4"}, {"error": "slow down"}), (503, {}, {"error": "busy"}), (200, {}, CHAT_OK)]
    )
    gen = OpenAIBackend(srv.url, model="m", timeout=5).generate(CHAT)
    assert gen.text == "42" and gen.prompt_tokens == 9 and gen.completion_tokens == 2
    assert len(srv.hits) == 3
    assert srv.hits[1][0] - srv.hits[0][0] >= 0.4, "waited as long as Retry-After said"
    assert srv.hits[2][0] - srv.hits[0][0] <= gen.retry_seconds + 0.05 and gen.retry_seconds >= 0.4


def test_a_first_time_answer_took_no_retry_seconds(scripted):
    srv = scripted([(200, {}, CHAT_OK)])
    assert OpenAIBackend(srv.url, model="m", timeout=5).generate(CHAT).retry_seconds < 0.01


def test_async_retries_then_succeeds(scripted):
    srv = scripted([(500, {}, {"error": "boom"}), (200, {}, CHAT_OK)])
    gen = asyncio.run(OpenAIBackend(srv.url, model="m", timeout=5).agenerate(CHAT))
    assert gen.text == "42" and len(srv.hits) == 2 and gen.retry_seconds > 0


def test_gives_up_after_max_retries_with_typed_error(scripted):
    srv = scripted([(503, {}, {"error": "down for maintenance"})])
    with pytest.raises(BackendUnavailableError, match="503"):
        OpenAIBackend(srv.url, model="m", timeout=5, max_retries=2).generate(CHAT)
    assert len(srv.hits) == 3


@pytest.mark.parametrize("body", [b"this is not json", {"unexpected": True}, {**CHAT_OK, "choices": []}])
def test_garbage_answers_raise_response_error(scripted, body):
    srv = scripted([(200, {}, body)])
    with pytest.raises(BackendResponseError):
        OpenAIBackend(srv.url, model="m", timeout=5).generate(CHAT)


def test_slow_server_times_out_without_hanging(scripted):
    srv = scripted([(200, {}, CHAT_OK)], delay=3.0)
    backend = OpenAIBackend(srv.url, model="m", timeout=0.5, max_retries=0)
    started = time.monotonic()
    with pytest.raises(BackendTimeoutError):
        backend.generate(CHAT)
    assert time.monotonic() - started < 2.5


def test_call_deadline_bounds_retries(scripted):
    srv = scripted([(503, {"retry-after": "5"}, {"error": "busy"})])
    backend = OpenAIBackend(srv.url, model="m", timeout=5, max_retries=10)
    started = time.monotonic()
    with pytest.raises((BackendUnavailableError, BackendTimeoutError)):
        backend.generate(CHAT, max_seconds=1.0)
    assert time.monotonic() - started < 1.5, "no retry waits past the deadline"
    assert len(srv.hits) == 1, "a Retry-After of 5 s cannot finish before a 1 s deadline: not retried"


def test_server_that_is_down_raises_unavailable_naming_it():
    url = f"http://127.0.0.1:{free_port()}/v1"
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError, match=str(url.split(":")[-1].split("/")[0])):
        OpenAIBackend(url, timeout=2, max_retries=0)
    with pytest.raises(BackendUnavailableError):
        OpenAIBackend(url, model="m", timeout=2, max_retries=1).generate(CHAT)
    assert time.monotonic() - started < 10
