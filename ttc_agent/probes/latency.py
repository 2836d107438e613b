"""`LatencyModel`: this backend's seconds as a function of the shape of a request.

One round of a strategy is one batched request: ``n`` samples of ``tokens_per_sample`` tokens
after a prompt of ``prompt_tokens``. The model is linear with non-negative weights in
``[1, prompt_tokens, n, tokens_per_sample, n * tokens_per_sample]``, fitted by
``ttc-agent profile`` on requests of many shapes. Where a round's samples end at different
lengths and the longest is known (a replayed round), the fourth column is the longest sample,
the decoding steps the batch runs, and the fifth the tokens all samples generated: the profile's
samples all run to their cap, so its fit reads both ways. A strategy's seconds are its rounds times one
round's, so latency is predicted from predicted tokens for any strategy, including ones never
traced. Saved as plain JSON.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.linear_model import LinearRegression

from ttc_agent.errors import InvalidRequestError

COLUMNS = ("const", "prompt_tokens", "n", "tokens_per_sample", "n_x_tokens_per_sample")


def _design(
    prompt_tokens: ArrayLike, n: ArrayLike, tokens_per_sample: ArrayLike, longest: ArrayLike | None = None
) -> np.ndarray:
    """The regressors along a new last axis (the decoding steps ``longest`` where given, else
    ``tokens_per_sample``); the inputs broadcast against each other."""
    steps = tokens_per_sample if longest is None else longest
    p, n, t, s = np.broadcast_arrays(
        *(np.atleast_1d(np.asarray(x, dtype=float)) for x in (prompt_tokens, n, tokens_per_sample, steps))
    )
    return np.stack([np.ones_like(p), p, n, s, n * t], axis=-1)


@dataclass
class LatencyModel:
    """Seconds of one round = ``weights`` · [1, prompt_tokens, n, tokens_per_sample, n·tokens_per_sample]."""

    weights: tuple[float, ...] = (0.0,) * len(COLUMNS)
    backend: dict[str, Any] | None = None

    @classmethod
    def fit(cls, rows: Sequence[dict[str, float]], backend: dict[str, Any] | None = None) -> LatencyModel:
        """Fit on measured rounds: dicts with prompt_tokens, n, tokens_per_sample, seconds, and
        optionally longest (the longest sample's tokens)."""
        if len(rows) < len(COLUMNS):
            raise InvalidRequestError(f"a latency model needs at least {len(COLUMNS)} measured rounds, got {len(rows)}")
        X = _design(
            [r["prompt_tokens"] for r in rows],
            [r["n"] for r in rows],
            [r["tokens_per_sample"] for r in rows],
            [r.get("longest", r["tokens_per_sample"]) for r in rows],
        )
        y = np.array([r["seconds"] for r in rows])
        reg = LinearRegression(fit_intercept=False, positive=True).fit(X, y)
        return cls(tuple(float(w) for w in reg.coef_), backend)

    def round_seconds(
        self, prompt_tokens: ArrayLike, n: ArrayLike, tokens_per_sample: ArrayLike, longest: ArrayLike | None = None
    ) -> np.ndarray:
        """Predicted seconds of one batched request (``longest``: its longest sample's tokens,
        where known; else every sample is taken to be ``tokens_per_sample`` long)."""
        return np.asarray(_design(prompt_tokens, n, tokens_per_sample, longest) @ np.array(self.weights))

    def seconds(
        self, prompt_tokens: ArrayLike, n: ArrayLike, completion_tokens: ArrayLike, rounds: ArrayLike
    ) -> np.ndarray:
        """Predicted seconds of a strategy: ``rounds`` requests of ``n`` samples sharing ``completion_tokens``."""
        rounds = np.maximum(np.asarray(rounds, dtype=float), 1)
        per_sample = np.asarray(completion_tokens, dtype=float) / (rounds * np.asarray(n, dtype=float))
        return np.asarray(rounds * self.round_seconds(prompt_tokens, n, per_sample))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(
            json.dumps({"columns": COLUMNS, "weights": self.weights, "backend": self.backend}, indent=2) + "\n"
        )

    @classmethod
    def load(cls, path: str | Path) -> LatencyModel:
        p = Path(path)
        if not p.is_file():
            raise InvalidRequestError(f"no latency model at {str(p)!r}; run `ttc-agent profile` first")
        data = json.loads(p.read_text())
        if tuple(data.get("columns", ())) != COLUMNS:
            raise InvalidRequestError(f"{p} has latency columns {data.get('columns')!r}, expected {list(COLUMNS)}")
        return cls(tuple(data["weights"]), data.get("backend"))


def profile(backend: Any, *, requests: int = 24, seed: int = 0, progress: bool = True) -> list[dict[str, float]]:
    """Measure ``requests`` generations of varied shape on ``backend`` (one warm-up first).

    Prompt lengths, sample counts and token limits are drawn from grids that cover what the
    menus use (n up to 16, up to 192 tokens a sample).
    """
    from rich.progress import track

    rng = random.Random(seed)
    filler = "The quick brown fox jumps over the lazy dog. "
    backend.generate("Hello", max_tokens=4)
    rows = []
    steps = range(requests)
    for _ in track(steps, description="profiling") if progress else steps:
        words = rng.choice([5, 40, 120, 300])
        n = rng.choice([1, 2, 4, 8, 16])
        max_tokens = rng.choice([16, 48, 96, 192])
        prompt = [{"role": "user", "content": f"{filler * (words // 9)} Write a long story about a fox."}]
        gen = backend.generate(
            prompt, n=n, temperature=1.0 if n > 1 else 0.0, max_tokens=max_tokens, seed=rng.randrange(10**6)
        )
        longest = max(c.num_tokens for c in gen.completions)
        rows.append(
            {
                "prompt_tokens": gen.prompt_tokens,
                "n": n,
                "tokens_per_sample": gen.completion_tokens / n,
                "longest": longest,
                "seconds": gen.seconds,
            }
        )
    return rows
