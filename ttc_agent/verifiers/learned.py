"""`LearnedVerifier`: an outcome reward probe trained from the user's own traces.

It reads a candidate the way the generator does: one forward pass of the generator over the
question and the candidate, hidden states mean-pooled over the candidate's tokens and taken at
its last token, at a few layers, plus text statistics of the candidate. A calibrated logistic
regression (`AccuracyProbe`) maps them to P(candidate is correct). The forward pass is counted
as verifier tokens and seconds.

Train it from trace folders (`ttc-agent collect` records every candidate with its correctness):
``ttc-agent train-verifier --traces traces/ --out verifier/``. Use it by spec:
``best_of_n(8, select=verifier, verifier=learned:verifier/)``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from ttc_agent.backends.base import Backend
from ttc_agent.errors import InvalidRequestError
from ttc_agent.estimators import AccuracyProbe, TextStats
from ttc_agent.extras import needs_extra
from ttc_agent.verifiers.base import BaseVerifier, Scores, TokenLogprobs, VerifierError

_SCHEMA = 1
_TRUSTED = [
    "ttc_agent.estimators.predictors.AccuracyProbe",
    "ttc_agent.probes.predictors.AccuracyProbe",  # where it lived when older verifiers were saved
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.model_selection._split.StratifiedKFold",
]


def default_layers(num_layers: int) -> tuple[int, int, int]:
    """The hidden-state layers `CandidateEncoder` reads unless told: the middle one, the one
    three quarters of the way up, and the last."""
    return num_layers // 2, int(num_layers * 0.75), num_layers


class CandidateEncoder:
    """Hidden-state features of (question, candidate) pairs from the generator model.

    Args:
        model: the generator's local HF folder (``None``: the embedded model).
        layers: hidden-state layers to read (0 = embeddings); ``None``: the middle layer, the
            one three quarters of the way up and the last (`default_layers`: 15, 22 and 30 on
            the 30-layer SmolLM2-135M, 12, 18 and 24 on the 24-layer Qwen2.5-0.5B).
        batch_size: candidates per forward pass.

    ``encode(..., cache=True)`` keeps each (question, candidate)'s features in memory and reuses
    them, so fitting several verifiers on the same candidates (outcome, then process) reads each
    candidate once; `LearnedVerifier.fit` uses it, scoring does not (a score's cost is what it
    read).
    """

    def __init__(
        self, model: str | Path | None = None, layers: Sequence[int] | None = None, batch_size: int = 8
    ) -> None:
        with needs_extra("local", "LearnedVerifier"):
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

        from ttc_agent.backends.models import resolve_model

        folder, _ = resolve_model(model)
        self.folder, self.batch_size = folder, batch_size
        self._cache: dict[tuple[str, str], np.ndarray] = {}
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        n = self.model.config.num_hidden_layers
        self.layers = default_layers(n) if layers is None else tuple(int(x) for x in layers)
        bad = [x for x in self.layers if not -n - 1 <= x <= n]
        if bad:
            raise InvalidRequestError(f"layers {bad} do not exist; the model has {n} layers (0-{n})")

    def fingerprint(self) -> str:
        from ttc_agent.backends.fingerprint import model_digest

        return model_digest(str(self.folder))

    def encode(self, question: str, candidates: Sequence[str], *, cache: bool = False) -> tuple[np.ndarray, int]:
        """Features of each candidate, and the number of tokens read (with ``cache``, the
        candidates seen before are not read again)."""
        if not cache:
            return self._encode(question, candidates)
        todo = list(dict.fromkeys(c for c in candidates if (question, c) not in self._cache))
        tokens = 0
        if todo:
            rows, tokens = self._encode(question, todo)
            self._cache.update({(question, c): row for c, row in zip(todo, rows, strict=True)})
        return np.stack([self._cache[(question, c)] for c in candidates]), tokens

    def _encode(self, question: str, candidates: Sequence[str]) -> tuple[np.ndarray, int]:
        import torch

        prefix = str(
            self.tokenizer.apply_chat_template(
                [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
            )
        )
        start = len(self.tokenizer(prefix, add_special_tokens=False)["input_ids"])
        rows, tokens = [], 0
        for i in range(0, len(candidates), self.batch_size):
            texts = [prefix + (c or " ") for c in candidates[i : i + self.batch_size]]
            batch = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.inference_mode():
                states = self.model(**batch, output_hidden_states=True).hidden_states
            mask = batch["attention_mask"].clone()
            tokens += int(mask.sum())
            last = mask.sum(1) - 1
            mask[:, :start] = 0  # pool over the candidate's tokens only
            weights = mask.unsqueeze(-1).float()
            feats = []
            for layer in self.layers:
                h = states[layer]
                feats.append((h * weights).sum(1) / weights.sum(1).clamp(min=1))
                feats.append(h[torch.arange(h.shape[0]), last])
            rows.append(torch.cat(feats, dim=1).numpy())
        return np.concatenate(rows), tokens


class LearnedVerifier(BaseVerifier):
    """P(correct) of a candidate from the generator's hidden states, trained on traces.

    ``kind="outcome"`` is trained on whole candidates; ``kind="process"`` also on partial
    solutions labelled by rollouts (`ttc_agent.evaluation.rollouts`), so it scores the steps
    of a beam search (a process reward model).
    """

    def __init__(
        self,
        encoder: CandidateEncoder,
        probe: AccuracyProbe | None = None,
        name: str = "learned",
        kind: str = "outcome",
    ) -> None:
        if kind not in ("outcome", "process"):
            raise InvalidRequestError(f"kind must be 'outcome' or 'process', got {kind!r}")
        self.encoder, self.probe, self.name, self.kind = encoder, probe, name, kind
        self._stats = TextStats()

    def features(self, question: str, solutions: Sequence[str], *, cache: bool = False) -> tuple[np.ndarray, int]:
        """Hidden-state and text features of each solution, and the tokens the encoder read."""
        hidden, tokens = self.encoder.encode(question, solutions, cache=cache)
        return np.concatenate(
            [hidden, self._stats.transform(list(solutions) or [" "])[: len(solutions)]], axis=1
        ), tokens

    def fit(
        self, questions: Sequence[str], candidates: Sequence[Sequence[str]], labels: Sequence[Sequence[bool]]
    ) -> LearnedVerifier:
        """Fit on every candidate of every question (``labels[i][j]``: candidate j of question i is right)."""
        y = np.array([int(bool(v)) for row in labels for v in row])
        if y.size == 0 or y.min() == y.max():
            raise VerifierError(
                f"nothing to learn: the traces hold {int(y.sum())} correct and {int((1 - y).sum())} wrong candidates; both kinds are needed"
            )
        X = np.concatenate(
            [self.features(q, c, cache=True)[0] for q, c in zip(questions, candidates, strict=True) if c]
        )
        # Thousands of hidden-state features from few questions: strong L2 regularisation.
        self.probe = AccuracyProbe(C=0.01).fit(X, y)
        return self

    def score(
        self, question: str, solutions: Sequence[str], *, logprobs: TokenLogprobs = None, backend: Backend | None = None
    ) -> Scores:
        if self.probe is None:
            raise VerifierError(f"verifier {self.name!r} is not trained: call fit() or LearnedVerifier.load()")
        started = time.perf_counter()
        X, tokens = self.features(question, solutions)
        return Scores(
            tuple(float(p) for p in self.probe.predict_right(X)),
            tokens=tokens,
            seconds=time.perf_counter() - started,
        )

    def save(self, folder: str | Path) -> Path:
        """A folder with ``verifier.json`` and a skops file; never pickles."""
        import skops.io as sio

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        sio.dump(self.probe, out / "probe.skops")
        meta = {
            "schema": _SCHEMA,
            "layers": list(self.encoder.layers),
            "weights": self.encoder.fingerprint(),
            "features": "hidden_states+text_stats",
            "kind": self.kind,
            "versions": {p: version(p) for p in ("ttc-agent", "scikit-learn", "skops")},
        }
        (out / "verifier.json").write_text(json.dumps(meta, indent=2) + "\n")
        return out

    @classmethod
    def load(cls, folder: str | Path, model: str | Path | None = None) -> LearnedVerifier:
        """Read a saved verifier for the generator in ``model`` (checked against its fingerprint)."""
        import skops.io as sio

        root = Path(folder)
        if not (root / "verifier.json").is_file():
            raise InvalidRequestError(f"no learned verifier at {str(root)!r} (verifier.json missing)")
        meta = json.loads((root / "verifier.json").read_text())
        if meta.get("schema") != _SCHEMA or meta.get("features") != "hidden_states+text_stats":
            raise VerifierError(
                f"{root} holds a verifier with schema {meta.get('schema')!r} and features {meta.get('features')!r}, which this ttc-agent cannot use"
            )
        encoder = CandidateEncoder(model, layers=meta["layers"])
        if encoder.fingerprint() != meta["weights"]:
            raise VerifierError(
                f"the verifier at {root} was trained on model weights {meta['weights']}, not {encoder.fingerprint()} ({encoder.folder})"
            )
        untrusted = [t for t in sio.get_untrusted_types(file=root / "probe.skops") if t not in _TRUSTED]
        if untrusted:
            raise VerifierError(f"{root / 'probe.skops'} contains types outside the trusted list: {untrusted}")
        probe = sio.load(root / "probe.skops", trusted=_TRUSTED)
        return cls(encoder, probe, name=f"learned:{root}", kind=meta.get("kind", "outcome"))


def examples_from_traces(
    records: Sequence[dict[str, Any]],
) -> tuple[list[str], list[list[str]], list[list[bool]], list[str]]:
    """Questions, candidate texts, labels and problem ids from trace records with several candidates."""
    questions, candidates, labels, ids = [], [], [], []
    for r in records:
        cands = [c for c in r.get("candidates", []) if c.get("text") is not None]
        if len(cands) < 2:
            continue
        users = [m["content"] for m in r["messages"] if m["role"] == "user"]
        questions.append(users[-1])
        candidates.append([c["text"] for c in cands])
        labels.append([bool(c["correct"]) for c in cands])
        ids.append(r["problem_id"])
    if not questions:
        raise InvalidRequestError("the traces hold no run with several candidate texts; collect a menu with best_of_n")
    return questions, candidates, labels, ids


def prefixes_from_rollouts(
    rollouts: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]]
) -> tuple[list[str], list[list[str]], list[list[bool]], list[str]]:
    """Partial solutions labelled by rollouts (right when some continuation ended right, the
    Math-Shepherd "hard" label), grouped per labelled candidate like `examples_from_traces`."""
    questions_by_id = {
        r["problem_id"]: [m["content"] for m in r["messages"] if m["role"] == "user"][-1] for r in records
    }
    questions, prefixes, labels, ids = [], [], [], []
    for row in rollouts:
        steps = [s for s in row["steps"] if s.get("prefix")]
        if not steps or row["problem_id"] not in questions_by_id:
            continue
        questions.append(questions_by_id[row["problem_id"]])
        prefixes.append([s["prefix"] for s in steps])
        labels.append([s["value"] > 0 for s in steps])
        ids.append(row["problem_id"])
    return questions, prefixes, labels, ids
