"""What several test modules share: a scripted backend for control-flow unit tests, synthetic
traces and a probe bundle fitted on them, and tiny PRM models (real-model tests live beside them)."""

from __future__ import annotations

import asyncio
import copy
import functools
import random
from collections.abc import Callable

from ttc_agent.backends.base import Completion, Generation, PromptResult, normalize_prompts, resolve_params
from ttc_agent.probes import FeatureSet, ProbeBundle, TextStats
from ttc_agent.strategies.menu import Menu

#: The two-strategy menu of the synthetic traces.
MENU = Menu(("greedy", "best_of_n(4, select=majority)"), {"max_tokens": 64})
#: The same strategies with short replies, for nodes on real models.
NODE_MENU = Menu(MENU.specs, {"max_tokens": 24})


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


def synthetic_traces(n=120, repeats=2, seed=0, gain_easy=0.05, gain_hard=0.05):
    """Easy (one-digit) and hard (three-digit) sums; best-of-4 costs 4x and gains a little."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        hard = i % 2 == 1
        a, b = (rng.randint(100, 999), rng.randint(100, 999)) if hard else (rng.randint(1, 9), rng.randint(1, 9))
        for spec in MENU.specs:
            k = 4 if spec.startswith("best") else 1
            for r in range(repeats):
                completion = k * (30 if hard else 10) * rng.uniform(0.85, 1.15)
                records.append({
                    "problem_id": f"p{i}", "strategy": spec, "repeat": r,
                    "messages": [{"role": "user", "content": f"What is {a} + {b}?"}],
                    "correct": rng.random() < (0.15 if hard else 0.9) + (k == 4) * (gain_hard if hard else gain_easy),
                    "prompt_tokens": 40, "completion_tokens": completion, "total_tokens": 40 + completion,
                    "rounds": 1, "seconds": 0.05 + 0.07 * (completion / k) * (1 + 0.1 * k),
                })  # fmt: skip
    return records


@functools.cache
def _synthetic_bundle() -> ProbeBundle:
    return ProbeBundle(NODE_MENU, FeatureSet([TextStats()])).fit(synthetic_traces(gain_easy=0.0, gain_hard=0.3))


def bundle_for(fingerprint):
    """Probes trained on synthetic traces where best-of-4 helps on hard sums (fitted once per
    session; each caller gets its own copy, made for ``fingerprint``)."""
    bundle = copy.deepcopy(_synthetic_bundle())
    bundle.fingerprint = fingerprint
    return bundle


def make_tiny_prm(embedded_dir, out, kind):
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, LlamaForTokenClassification

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(embedded_dir)
    tok.add_special_tokens({"additional_special_tokens": ["<extra_0>", "ки"]})
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
        pad_token_id=tok.pad_token_id, num_labels={"qwen": 2, "value-head": 1}.get(kind, 2),
    )  # fmt: skip
    model = LlamaForCausalLM(config) if kind == "math-shepherd" else LlamaForTokenClassification(config)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
