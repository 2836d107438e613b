"""`ChatModelBackend`: ttc-agent in front of an existing LangChain chat model.

Any `BaseChatModel` becomes a `Backend`: ``ChatOpenAI(base_url=<vllm serve>/v1)``, a hosted
model, or another integration. Best-of-N asks for ``n`` samples in one request when the model
has an ``n`` parameter and otherwise sends one request per sample (``batch``); token logprobs
come from models with a ``logprobs`` parameter (OpenAI-compatible ones) and are refused with
`LogprobsUnavailableError` elsewhere; spent tokens come from each reply's ``usage_metadata``.

Token counts before a call (the probes' prompt length, the context check) need a tokenizer:
pass ``count_tokens=`` (for instance a `transformers` tokenizer's), or the backend estimates
four characters a token and says so in its fingerprint (``"token_counts": "approximate"``),
which every decision's trace records through the bundle check.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, convert_to_messages
from langchain_core.outputs import ChatGeneration, LLMResult

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
from ttc_agent.errors import BackendResponseError, InvalidRequestError, LogprobsUnavailableError

#: Characters per token when no tokenizer is given (a common rule of thumb for English).
_CHARS_PER_TOKEN = 4


class ChatModelBackend:
    """A `Backend` generating through a LangChain chat model.

    Args:
        model: the chat model (its own settings, such as ``base_url`` and ``api_key``, apply).
        count_tokens: a function giving a text's length in the model's tokens; ``None``: an
            approximate count (four characters a token).
        continue_final_message: how the model continues a partial assistant turn (beam
            search's steps, forced tool calls): ``"vllm"`` sends vLLM's
            ``continue_final_message`` extension; ``None`` refuses such prompts with a typed error.
        context_length: the model's context in tokens, for the context check (``None``: unchecked).

    Example:
        >>> chat = ChatOpenAI(base_url="http://127.0.0.1:8000/v1", api_key="EMPTY", model="smollm2")
        >>> engine = TTCEngine(ChatModelBackend(chat, continue_final_message="vllm"), bundle)
    """

    def __init__(
        self,
        model: BaseChatModel,
        *,
        count_tokens: Callable[[str], int] | None = None,
        continue_final_message: str | None = None,
        context_length: int | None = None,
    ) -> None:
        if continue_final_message not in (None, "vllm"):
            raise InvalidRequestError(f"continue_final_message must be 'vllm' or None, got {continue_final_message!r}")
        self.model = model
        self._count = count_tokens
        self._continue = continue_final_message
        self.context_length = context_length
        fields = type(model).model_fields
        self._has = {name: name in fields for name in ("n", "logprobs", "temperature", "top_p", "seed", "max_tokens")}

    @property
    def model_name(self) -> str:
        name = getattr(self.model, "model_name", None) or getattr(self.model, "model", None)
        return str(name or self.model._llm_type)

    def fingerprint(self) -> dict[str, Any]:
        return {
            "backend": "chat_model",
            "class": type(self.model).__name__,
            "model": self.model_name,
            "token_counts": "tokenizer" if self._count is not None else "approximate",
        }

    def render(self, prompt: Prompt) -> str:
        p = normalize_prompts(prompt)[0]
        return p.text if p.text is not None else "\n".join(f"{m['role']}: {m['content']}" for m in p.messages)

    def count_tokens(self, prompt: Prompt) -> int:
        p = normalize_prompts(prompt)[0]
        texts = [p.text] if p.text is not None else [m["content"] for m in p.messages]
        if self._count is not None:
            return sum(self._count(t) for t in texts)
        return sum(math.ceil(len(t) / _CHARS_PER_TOKEN) + 4 for t in texts)  # + a turn's framing

    # -- generation ------------------------------------------------------------------------

    def _request(self, p: NormalizedPrompt, params: SamplingParams) -> tuple[list[BaseMessage], dict[str, Any]]:
        if params.logprobs and not self._has["logprobs"]:
            raise LogprobsUnavailableError(
                f"{type(self.model).__name__} ({self.model_name}) returns no token logprobs; "
                "choose a menu without logprob verifiers or confidence voting"
            )
        kwargs: dict[str, Any] = {"max_tokens": params.max_tokens}
        if params.stop:
            kwargs["stop"] = list(params.stop)
        for name in ("temperature", "top_p", "seed"):
            value = getattr(params, name)
            if value is not None and self._has[name]:
                kwargs[name] = value
        if params.logprobs:
            kwargs["logprobs"] = True
        if p.text is not None:
            return convert_to_messages([("user", p.text)]), kwargs
        if p.continues_assistant:
            if self._continue is None:
                raise InvalidRequestError(
                    f"{self.model_name} cannot continue a partial assistant turn (beam search and forced tool "
                    "calls need it); for a vLLM server pass continue_final_message='vllm'"
                )
            kwargs["extra_body"] = {"continue_final_message": True, "add_generation_prompt": False}
        return convert_to_messages(
            [(m["role"] if m["role"] != "tool" else "user", m["content"]) for m in p.messages]
        ), kwargs

    def _calls(self, p: NormalizedPrompt, params: SamplingParams) -> list[tuple[list[BaseMessage], dict[str, Any]]]:
        """One request for all ``n`` samples where the model takes ``n``; else one per sample."""
        messages, kwargs = self._request(p, params)
        if params.n == 1 or self._has["n"]:
            return [(messages, {**kwargs, **({"n": params.n} if params.n > 1 else {})})]
        return [(messages, kwargs)] * params.n

    def generate(
        self, prompts: Prompt | Sequence[Prompt], params: SamplingParams | None = None, **kwargs: Any
    ) -> Generation:
        params = resolve_params(params, kwargs)
        started = time.perf_counter()
        results = []
        for p in normalize_prompts(prompts):
            replies = [self.model.generate([messages], **kw) for messages, kw in self._calls(p, params)]
            results.append(self._result(p, replies))
        return Generation(tuple(results), time.perf_counter() - started, self.model_name)

    async def agenerate(
        self, prompts: Prompt | Sequence[Prompt], params: SamplingParams | None = None, **kwargs: Any
    ) -> Generation:
        params = resolve_params(params, kwargs)
        started = time.perf_counter()
        batch = normalize_prompts(prompts)
        per_prompt = [self._calls(p, params) for p in batch]
        replies = await asyncio.gather(
            *(self.model.agenerate([messages], **kw) for calls in per_prompt for messages, kw in calls)
        )
        results, i = [], 0
        for p, calls in zip(batch, per_prompt, strict=True):
            results.append(self._result(p, list(replies[i : i + len(calls)])))
            i += len(calls)
        return Generation(tuple(results), time.perf_counter() - started, self.model_name)

    def _result(self, p: NormalizedPrompt, replies: list[LLMResult]) -> PromptResult:
        completions: list[Completion] = []
        prompt_tokens = None
        for reply in replies:
            generations = [g for g in reply.generations[0] if isinstance(g, ChatGeneration)]
            if not generations:
                raise BackendResponseError(f"{self.model_name} returned no chat generation: {reply!r}")
            usage = _usage(generations)
            if usage is not None and prompt_tokens is None:
                prompt_tokens = usage[0]
            counts = _split(usage[1] if usage else None, [g.message for g in generations], self._text_tokens)
            completions += [_completion(g, n) for g, n in zip(generations, counts, strict=True)]
        return PromptResult(
            prompt_tokens if prompt_tokens is not None else self.count_tokens(_as_prompt(p)), tuple(completions)
        )

    def _text_tokens(self, text: str) -> int:
        return self._count(text) if self._count is not None else math.ceil(len(text) / _CHARS_PER_TOKEN)


def _as_prompt(p: NormalizedPrompt) -> Prompt:
    return p.text if p.text is not None else list(p.messages)


def _usage(generations: list[ChatGeneration]) -> tuple[int, int] | None:
    """(input, output) tokens of one request: providers put the request's usage on its first reply."""
    message = generations[0].message
    usage = message.usage_metadata if isinstance(message, AIMessage) else None
    return None if usage is None else (usage["input_tokens"], usage["output_tokens"])


def _split(total: int | None, messages: list[BaseMessage], count: Callable[[str], int]) -> list[int]:
    """Each reply's completion tokens: its logprobs' length when it has them, else the request's
    output tokens shared out by text length (exact in total), else an estimate."""
    from_logprobs = [_logprobs(m) for m in messages]
    if all(lp is not None for lp in from_logprobs):
        return [len(lp or ()) for lp in from_logprobs]
    estimates = [max(1, count(m.text)) for m in messages]
    if total is None:
        return estimates
    shares = [total * e // sum(estimates) for e in estimates]
    shares[0] += total - sum(shares)
    return shares


def _logprobs(message: BaseMessage) -> tuple[float, ...] | None:
    content = (message.response_metadata.get("logprobs") or {}).get("content")
    return None if content is None else tuple(float(t["logprob"]) for t in content)


def _completion(generation: ChatGeneration, tokens: int) -> Completion:
    message = generation.message
    info = {**(generation.generation_info or {}), **message.response_metadata}
    reason = info.get("finish_reason") or "stop"
    return Completion(
        text=message.text,
        finish_reason="length" if reason == "length" else "stop",
        num_tokens=tokens,
        token_logprobs=_logprobs(message),
        stop_string=info.get("stop_reason") if isinstance(info.get("stop_reason"), str) else None,
    )
