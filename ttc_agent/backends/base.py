"""The `Backend` protocol and the request and result types every backend shares.

A prompt is either a raw string (sent to the model as is) or a list of chat messages
(``{"role": ..., "content": ...}``). A chat whose last message has the role ``"assistant"``
is a *partial assistant turn*: the model continues that message instead of starting a new
one, which is how beam search extends its partial solutions. ``generate`` takes one prompt or
a batch of prompts and runs them as one batched request.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeAlias, runtime_checkable

from ttc_agent.errors import InvalidRequestError
from ttc_agent.validation import NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, Interval, check_param

Message: TypeAlias = Mapping[str, str]
Prompt: TypeAlias = str | Sequence[Message]

_ROLES = frozenset({"system", "user", "assistant", "tool"})


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: the same knobs as vLLM's and OpenAI's, checked on construction.

    ``temperature=0`` means greedy decoding. ``max_seconds``, when set, is the call's
    deadline: generation stops (``finish_reason="deadline"``) once it has run that long.
    ``min_confidence``, when set (with ``logprobs``), cuts a sample as soon as the mean token
    log-probability of any ``confidence_window`` consecutive tokens it has generated falls below
    it (``finish_reason="low_confidence"``; DeepConf's online filter): a sample cut this way
    has a `confidence` below ``min_confidence``, as it would have had if generated whole. Only
    backends that can stop one sequence of a batch cut (in-process vLLM); the others generate
    every sample whole and leave the filtering to the caller.
    """

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    seed: int | None = None
    max_seconds: float | None = None
    min_confidence: float | None = None
    confidence_window: int = 32

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        check_param("n", self.n, POSITIVE_INT)
        check_param("max_tokens", self.max_tokens, POSITIVE_INT)
        check_param("seed", self.seed, NON_NEGATIVE_INT, allow_none=True)
        check_param("temperature", self.temperature, NON_NEGATIVE)
        check_param("top_p", self.top_p, Interval(float, 0, 1, closed="right"))
        check_param("max_seconds", self.max_seconds, POSITIVE, allow_none=True)
        check_param("confidence_window", self.confidence_window, POSITIVE_INT)
        if self.min_confidence is not None:
            if not isinstance(self.min_confidence, int | float) or math.isnan(self.min_confidence):
                raise InvalidRequestError(f"min_confidence must be a number, got {self.min_confidence!r}")
            if not self.logprobs:
                raise InvalidRequestError("min_confidence needs logprobs=True: confidence is read from them")
        for s in self.stop:
            if not isinstance(s, str) or not s:
                raise InvalidRequestError(f"stop strings must be non-empty strings, got {s!r}")
        if self.n > 1 and self.temperature == 0:
            raise InvalidRequestError(
                f"n={self.n} samples need temperature > 0; greedy decoding gives n copies of one answer"
            )

    @property
    def greedy(self) -> bool:
        """True when decoding is deterministic (temperature 0)."""
        return self.temperature == 0

    def with_(self, **changes: Any) -> SamplingParams:
        """A copy with some fields changed (checked again)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class Completion:
    """One sampled continuation.

    ``finish_reason`` is ``"stop"`` (end of turn or a stop string, which is not included in
    ``text``), ``"length"`` (``max_tokens`` reached), ``"deadline"`` (``max_seconds`` reached)
    or ``"low_confidence"`` (cut by ``min_confidence``).
    ``stop_string`` names the stop string that ended it (``None`` at end of turn or a limit).
    ``token_logprobs`` holds each generated token's log-probability under the model's raw
    distribution (before temperature and top-p), when logprobs were asked for.
    """

    text: str
    finish_reason: str
    num_tokens: int
    token_logprobs: tuple[float, ...] | None = None
    stop_string: str | None = None

    @property
    def cumulative_logprob(self) -> float | None:
        """Sum of the token log-probabilities, or None when logprobs were not asked for."""
        return None if self.token_logprobs is None else float(sum(self.token_logprobs))


@dataclass(frozen=True)
class PromptResult:
    """The completions of one prompt of a batch, and that prompt's exact token count.

    ``retry_seconds`` is the time spent before the attempt that answered: failed attempts and
    the waits between them (0 for a first-time answer, and for local backends).
    """

    prompt_tokens: int
    completions: tuple[Completion, ...]
    retry_seconds: float = 0.0


@dataclass(frozen=True)
class Generation:
    """What one ``generate`` call returned: per prompt, its completions; per call, exact cost.

    ``prompt_tokens`` counts each prompt once (as OpenAI-compatible servers do, however many
    samples share it); ``completion_tokens`` counts every generated token of every sample.
    ``seconds`` is the wall-clock time the backend measured around the request.
    """

    results: tuple[PromptResult, ...]
    seconds: float
    model: str = ""

    @property
    def prompt_tokens(self) -> int:
        return sum(r.prompt_tokens for r in self.results)

    @property
    def retry_seconds(self) -> float:
        """The latency retries added: the longest of the prompts' (they are sent concurrently)."""
        return max((r.retry_seconds for r in self.results), default=0.0)

    @property
    def completion_tokens(self) -> int:
        return sum(c.num_tokens for r in self.results for c in r.completions)

    @property
    def completions(self) -> tuple[Completion, ...]:
        """The completions of the first prompt (the only one for a single-prompt call)."""
        return self.results[0].completions

    @property
    def text(self) -> str:
        """The first completion's text: handy for greedy single-prompt calls."""
        return self.results[0].completions[0].text


@runtime_checkable
class Backend(Protocol):
    """Generates completions for prompts, reporting exact tokens and measured seconds.

    Implementations are safe to share between threads and event-loop tasks: many graph
    threads may call one backend at once.
    """

    @property
    def model_name(self) -> str: ...

    def fingerprint(self) -> dict[str, Any]: ...

    def generate(
        self, prompts: Prompt | Sequence[Prompt], params: SamplingParams | None = None, **kwargs: Any
    ) -> Generation: ...

    async def agenerate(
        self, prompts: Prompt | Sequence[Prompt], params: SamplingParams | None = None, **kwargs: Any
    ) -> Generation: ...

    def render(self, prompt: Prompt) -> str: ...

    def count_tokens(self, prompt: Prompt) -> int: ...


@dataclass(frozen=True)
class NormalizedPrompt:
    """A checked prompt: raw text, or chat messages with a flag for a partial assistant turn."""

    text: str | None = None
    messages: tuple[dict[str, str], ...] = field(default_factory=tuple)

    @property
    def is_chat(self) -> bool:
        return self.text is None

    @property
    def continues_assistant(self) -> bool:
        """True when the last message is a partial assistant turn to continue."""
        return self.is_chat and self.messages[-1]["role"] == "assistant"


def normalize_prompts(prompts: Prompt | Sequence[Prompt]) -> list[NormalizedPrompt]:
    """Turn one prompt or a batch of prompts into checked `NormalizedPrompt` objects."""
    batch: list[object]
    if isinstance(prompts, str) or _is_chat(prompts):
        batch = [prompts]
    elif isinstance(prompts, Sequence) and not isinstance(prompts, bytes | bytearray):
        batch = list(prompts)
        if not batch:
            raise InvalidRequestError("the batch of prompts is empty")
    else:
        raise InvalidRequestError(f"a prompt must be a string or a list of chat messages, got {type(prompts).__name__}")
    return [_normalize_one(p, i) for i, p in enumerate(batch)]


def _is_chat(obj: object) -> bool:
    return isinstance(obj, Sequence) and not isinstance(obj, str) and len(obj) > 0 and isinstance(obj[0], Mapping)


def _normalize_one(prompt: object, index: int) -> NormalizedPrompt:
    where = f"prompt {index}"
    if isinstance(prompt, str):
        if not prompt.strip():
            raise InvalidRequestError(f"{where} is empty: {prompt!r}")
        return NormalizedPrompt(text=prompt)
    if not isinstance(prompt, Sequence) or not _is_chat(prompt):
        raise InvalidRequestError(
            f"{where} must be a non-empty string or a non-empty list of chat messages, got {prompt!r}"
        )
    messages = []
    for j, m in enumerate(prompt):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise InvalidRequestError(f"{where}, message {j} needs 'role' and 'content', got {m!r}")
        role, content = m["role"], m["content"]
        if role not in _ROLES:
            raise InvalidRequestError(
                f"{where}, message {j} has unknown role {role!r}; expected one of {sorted(_ROLES)}"
            )
        if not isinstance(content, str):
            raise InvalidRequestError(f"{where}, message {j} content must be a string, got {type(content).__name__}")
        messages.append({"role": role, "content": content})
    if not any(m["content"].strip() for m in messages if m["role"] != "system"):
        raise InvalidRequestError(f"{where} has no non-empty user or assistant message: {messages!r}")
    return NormalizedPrompt(messages=tuple(messages))


def resolve_params(params: SamplingParams | None, kwargs: Mapping[str, Any]) -> SamplingParams:
    """Merge keyword overrides into ``params`` (or the defaults), checking every value."""
    base = params or SamplingParams()
    if not kwargs:
        return base
    unknown = set(kwargs) - set(SamplingParams.__dataclass_fields__)
    if unknown:
        raise InvalidRequestError(
            f"unknown sampling parameter(s) {sorted(unknown)}; expected some of {sorted(SamplingParams.__dataclass_fields__)}"
        )
    return replace(base, **kwargs)


class LockedSyncBackend:
    """Mixin for in-process backends with a synchronous ``generate``.

    ``agenerate`` runs ``generate`` in a worker thread so the event loop stays free; ``_lock``
    guards the model, so many graph threads can share one safely (`TransformersBackend` holds
    it for a whole generation; `VLLMBackend` only while it touches the engine, so its calls
    batch).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()

    async def agenerate(
        self, prompts: Prompt | Sequence[Prompt], params: SamplingParams | None = None, **kwargs: Any
    ) -> Generation:
        return await asyncio.to_thread(self.generate, prompts, params, **kwargs)  # type: ignore[attr-defined]
