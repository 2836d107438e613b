"""`OpenAIBackend`: any OpenAI-compatible server, a `vllm serve` process first of all."""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import openai
from opentelemetry import propagate
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
)
from tenacity.stop import stop_base

from ttc_agent.backends.base import (
    Completion,
    Generation,
    NormalizedPrompt,
    Prompt,
    PromptResult,
    SamplingParams,
    normalize_prompts,
    resolve_params,
)
from ttc_agent.backends.chat_template import ChatTemplate
from ttc_agent.errors import (
    BackendError,
    BackendResponseError,
    BackendTimeoutError,
    BackendUnavailableError,
    InvalidRequestError,
    ModelLoadError,
)
from ttc_agent.extras import needs_extra
from ttc_agent.validation import POSITIVE, POSITIVE_INT, Interval, check_param

_RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)


class OpenAIBackend:
    """Talks to an OpenAI-compatible server: chat prompts use the chat endpoint (continuing a
    partial assistant turn with vLLM's ``continue_final_message``), raw prompts the completions
    endpoint.

    Every request has a timeout. Rate limits (429), server errors (5xx) and connection errors
    are retried with exponential backoff and jitter, honouring ``Retry-After``, until
    ``max_retries`` or the call's ``max_seconds`` run out; then a typed `BackendError` is raised.

    Args:
        base_url: the server's API root, e.g. ``"http://127.0.0.1:8000/v1"``.
        model: the served model's name; ``None`` asks the server (its first model).
        api_key: sent as a bearer token (vLLM ignores it unless started with ``--api-key``);
            ``None``: ``$OPENAI_API_KEY``, else ``"EMPTY"``.
        timeout: seconds allowed for one HTTP request.
        max_retries: retries after the first attempt.
        max_concurrency: requests in flight at once for a batch of chat prompts.
        tokenizer: a registered model name or Hugging Face folder whose tokenizer and chat
            template are the served model's: prompts are then counted and rendered here,
            without a ``/tokenize`` round trip per call (``None``: ask the server).
    """

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 4,
        max_concurrency: int = 16,
        tokenizer: str | Path | None = None,
    ) -> None:
        check_param("timeout", timeout, POSITIVE, owner="OpenAIBackend")
        check_param("max_retries", max_retries, Interval(int, 0, None), owner="OpenAIBackend")
        check_param("max_concurrency", max_concurrency, POSITIVE_INT, owner="OpenAIBackend")
        api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "EMPTY")
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.max_concurrency = max_concurrency
        self._client = openai.OpenAI(base_url=self.base_url, api_key=api_key, timeout=timeout, max_retries=0)
        self._aclient = openai.AsyncOpenAI(base_url=self.base_url, api_key=api_key, timeout=timeout, max_retries=0)
        # One connection pool for /tokenize and /detokenize: a new connection per count is slow.
        self._http = httpx.Client(headers={"Authorization": f"Bearer {api_key}"}, timeout=self.timeout)
        self._model = model or self._first_model()
        self._template = _local_template(tokenizer) if tokenizer is not None else None
        self._template_lock = threading.Lock()  # a fast tokenizer serves one thread at a time

    @property
    def model_name(self) -> str:
        return self._model

    def fingerprint(self) -> dict[str, Any]:
        """Backend kind, server address and served model name."""
        return {"backend": "openai", "model": self._model, "base_url": self.base_url}

    # -- rendering and token counts, as the server does them (vLLM's /tokenize extension) --

    def count_tokens(self, prompt: Prompt) -> int:
        """Number of tokens the server's model reads for ``prompt``."""
        p = normalize_prompts(prompt)[0]
        if self._template is not None:
            with self._template_lock:
                return len(self._template.encode(p))
        return len(self._tokenize(p))

    def render(self, prompt: Prompt) -> str:
        """The text the server's model reads for ``prompt`` (its chat template applied)."""
        p = normalize_prompts(prompt)[0]
        if self._template is not None:
            with self._template_lock:
                return self._template.render(p)
        tokens = self._tokenize(p)
        body = self._post_json("/detokenize", {"model": self._model, "tokens": tokens})
        return str(body["prompt"])

    def _tokenize(self, p: NormalizedPrompt) -> list[int]:
        payload: dict[str, Any] = {"model": self._model}
        if p.is_chat:
            payload.update(messages=list(p.messages), **_continuation(p))
        else:
            payload["prompt"] = p.text
        return list(self._post_json("/tokenize", payload)["tokens"])

    def _post_json(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        root = self.base_url.removesuffix("/v1")
        try:
            response = self._http.post(root + path, json=payload, headers=trace_headers())
        except httpx.HTTPError as exc:
            raise BackendUnavailableError(f"could not reach {root + path}: {exc}") from exc
        if response.status_code == 404:
            raise BackendError(f"the server at {root!r} has no {path} endpoint (vLLM's); token counts need it")
        try:
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            return body
        except (httpx.HTTPStatusError, json.JSONDecodeError) as exc:
            raise BackendResponseError(
                f"{root + path} answered {response.status_code}: {response.text[:200]!r}"
            ) from exc

    def _first_model(self) -> str:
        try:
            models = self._client.models.list(timeout=self.timeout).data
        except openai.APIConnectionError as exc:
            raise BackendUnavailableError(f"no OpenAI-compatible server answers at {self.base_url!r}: {exc}") from exc
        except openai.APIError as exc:
            raise BackendResponseError(f"{self.base_url!r} did not list its models: {exc}") from exc
        if not models:
            raise ModelLoadError(f"the server at {self.base_url!r} serves no model")
        return models[0].id

    # -- generation --

    def generate(
        self, prompts: Prompt | Sequence[Prompt], params: SamplingParams | None = None, **kwargs: Any
    ) -> Generation:
        """One request per prompt (sent concurrently), ``n`` samples each."""
        params = resolve_params(params, kwargs)
        batch = normalize_prompts(prompts)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(batch))) as pool:
            results = list(pool.map(lambda p: self._one(p, params, started), batch))
        return Generation(results=tuple(results), seconds=time.perf_counter() - started, model=self._model)

    async def agenerate(
        self, prompts: Prompt | Sequence[Prompt], params: SamplingParams | None = None, **kwargs: Any
    ) -> Generation:
        """Async ``generate``: the requests of a batch run concurrently on the event loop."""
        params = resolve_params(params, kwargs)
        batch = normalize_prompts(prompts)
        started = time.perf_counter()
        gate = asyncio.Semaphore(self.max_concurrency)

        async def one(p: NormalizedPrompt) -> PromptResult:
            async with gate:
                return await self._aone(p, params, started)

        results = await asyncio.gather(*(one(p) for p in batch))
        return Generation(results=tuple(results), seconds=time.perf_counter() - started, model=self._model)

    def _one(self, p: NormalizedPrompt, params: SamplingParams, started: float) -> PromptResult:
        call = self._client.chat.completions.create if p.is_chat else self._client.completions.create
        first = last = time.perf_counter()
        try:
            for attempt in Retrying(**self._retry_policy(params)):
                with attempt:
                    last = time.perf_counter() if attempt.retry_state.attempt_number > 1 else first
                    response = call(**self._request(p, params, started))
        except openai.APIError as exc:
            raise _typed(exc, self.base_url) from exc
        except json.JSONDecodeError as exc:
            raise BackendResponseError(f"{self.base_url} answered with a body that is not JSON: {exc}") from exc
        return replace(_parse(response, p, params.logprobs), retry_seconds=last - first)

    async def _aone(self, p: NormalizedPrompt, params: SamplingParams, started: float) -> PromptResult:
        call = self._aclient.chat.completions.create if p.is_chat else self._aclient.completions.create
        first = last = time.perf_counter()
        try:
            async for attempt in AsyncRetrying(**self._retry_policy(params)):
                with attempt:
                    last = time.perf_counter() if attempt.retry_state.attempt_number > 1 else first
                    response = await call(**self._request(p, params, started))
        except openai.APIError as exc:
            raise _typed(exc, self.base_url) from exc
        except json.JSONDecodeError as exc:
            raise BackendResponseError(f"{self.base_url} answered with a body that is not JSON: {exc}") from exc
        return replace(_parse(response, p, params.logprobs), retry_seconds=last - first)

    def _retry_policy(self, params: SamplingParams) -> dict[str, Any]:
        stop: stop_base = stop_after_attempt(self.max_retries + 1)
        if params.max_seconds is not None:
            stop = stop | stop_before_delay(params.max_seconds)  # never sleep past the deadline
        return {
            "retry": retry_if_exception(lambda e: isinstance(e, _RETRYABLE)),
            "wait": _wait_retry_after,
            "stop": stop,
            "reraise": True,
        }

    def _request(self, p: NormalizedPrompt, params: SamplingParams, started: float) -> dict[str, Any]:
        timeout = self.timeout
        if params.max_seconds is not None:
            left = params.max_seconds - (time.perf_counter() - started)
            if left <= 0:
                raise BackendTimeoutError(
                    f"the call's deadline of {params.max_seconds}s passed before the request was sent"
                )
            timeout = min(timeout, left)
        request: dict[str, Any] = {
            "model": self._model,
            "n": params.n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "timeout": timeout,
        }
        if params.stop:
            request["stop"] = list(params.stop)
        if params.seed is not None:
            request["seed"] = params.seed
        # Token logprobs are always asked for: they give each sample's exact token count.
        if p.is_chat:
            request.update(messages=list(p.messages), logprobs=True, extra_body=_continuation(p))
        else:
            request.update(prompt=p.text, logprobs=1)
        if trace := trace_headers():
            request["extra_headers"] = trace
        return request


def _local_template(tokenizer: str | Path) -> ChatTemplate:
    """The chat template of a registered model name or a Hugging Face folder."""
    with needs_extra("local", "a local chat template (tokenizer=)"):
        from transformers import AutoTokenizer

    from ttc_agent.backends.models import resolve_model

    folder, _ = resolve_model(tokenizer)
    return ChatTemplate(AutoTokenizer.from_pretrained(folder))


def _continuation(p: NormalizedPrompt) -> dict[str, bool]:
    cont = p.continues_assistant
    return {"add_generation_prompt": not cont, "continue_final_message": cont}


def _wait_retry_after(state: RetryCallState) -> float:
    """Honour the server's Retry-After header; otherwise exponential backoff with full jitter."""
    exc = state.outcome.exception() if state.outcome else None
    response = getattr(exc, "response", None)
    header = response.headers.get("retry-after") if response is not None else None
    if header:
        try:
            return min(float(header), 60.0)
        except ValueError:
            pass
    return random.uniform(0, min(8.0, 0.25 * 2 ** (state.attempt_number - 1)))


def _typed(exc: openai.APIError, where: str) -> BackendError | InvalidRequestError | ModelLoadError:
    if isinstance(exc, openai.APITimeoutError):
        return BackendTimeoutError(f"{where} did not answer in time: {exc}")
    if isinstance(exc, openai.APIConnectionError):
        return BackendUnavailableError(f"could not reach {where}: {exc}")
    if isinstance(exc, openai.NotFoundError):
        return ModelLoadError(f"{where} does not serve that model or endpoint: {exc}")
    if isinstance(exc, openai.BadRequestError):
        return InvalidRequestError(f"{where} rejected the request: {exc}")
    if isinstance(exc, openai.APIStatusError) and (exc.status_code == 429 or exc.status_code >= 500):
        return BackendUnavailableError(f"{where} kept failing (HTTP {exc.status_code}) until retries ran out: {exc}")
    return BackendResponseError(f"{where} answered with something that is not a completion: {exc}")


def _parse(response: Any, p: NormalizedPrompt, keep_logprobs: bool) -> PromptResult:
    """Turn a chat or completions response into a `PromptResult`, checking its shape."""
    try:
        usage = response.usage
        choices = sorted(response.choices, key=lambda c: c.index)
        completions = tuple(_parse_choice(c, p.is_chat, keep_logprobs) for c in choices)
        prompt_tokens = int(usage.prompt_tokens)
    except (AttributeError, TypeError, ValueError) as exc:
        raise BackendResponseError(f"malformed completion response: {str(response)[:200]!r}") from exc
    if not completions:
        raise BackendResponseError(f"the response has no choices: {str(response)[:200]!r}")
    return PromptResult(prompt_tokens=prompt_tokens, completions=completions)


def _parse_choice(choice: Any, chat: bool, keep_logprobs: bool) -> Completion:
    if chat:
        text = choice.message.content or ""
        logprobs = tuple(float(t.logprob) for t in (choice.logprobs.content or []))
    else:
        text = choice.text
        logprobs = tuple(float(x) for x in choice.logprobs.token_logprobs)
    reason = "length" if choice.finish_reason == "length" else "stop"
    stop_reason = (choice.model_extra or {}).get("stop_reason")  # vLLM's extension field
    return Completion(
        text=text,
        finish_reason=reason,
        num_tokens=len(logprobs),
        token_logprobs=logprobs if keep_logprobs else None,
        stop_string=stop_reason if isinstance(stop_reason, str) else None,
    )


def trace_headers() -> dict[str, str]:
    """The current OpenTelemetry context as W3C ``traceparent``/``tracestate`` headers (empty
    outside a recording span), so the server's spans join the caller's trace."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier
