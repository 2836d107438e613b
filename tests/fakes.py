"""A scripted backend for control-flow unit tests (real-model tests live beside them)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ttc_agent.backends.base import Completion, Generation, PromptResult, normalize_prompts, resolve_params


class ScriptedBackend:
    """Answers each prompt with completions made by ``make(prompt, params, index)``; records calls."""

    model_name = "scripted"

    def __init__(self, make: Callable[..., Completion]) -> None:
        self.make = make
        self.calls: list[tuple[list, object]] = []

    def fingerprint(self):
        return {"backend": "scripted", "model": "scripted"}

    def render(self, prompt):
        return str(prompt)

    def count_tokens(self, prompt):
        return 10

    def generate(self, prompts, params=None, **kwargs):
        params = resolve_params(params, kwargs)
        batch = normalize_prompts(prompts)
        self.calls.append((batch, params))
        results = tuple(PromptResult(10, tuple(self.make(p, params, i) for i in range(params.n))) for p in batch)
        return Generation(results=results, seconds=0.01, model="scripted")

    async def agenerate(self, prompts, params=None, **kwargs):
        await asyncio.sleep(0)
        return self.generate(prompts, params, **kwargs)


def texts(*answers: str, tokens: int = 5, logprob: float = -0.5):
    """A `make` function cycling through fixed answer texts."""

    def make(prompt, params, i):
        text = answers[i % len(answers)]
        used = min(tokens, params.max_tokens)  # a real backend never passes max_tokens
        reason = "stop" if used == tokens else "length"
        return Completion(text, reason, used, (logprob,) * used if params.logprobs else None)

    return make
