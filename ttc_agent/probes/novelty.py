"""Out of distribution: how far a prompt's features lie from the prompts a bundle was fitted on.

A bundle's probes extrapolate freely: fitted on arithmetic, they predict a word problem's
accuracy and tokens with the same confidence, and are wrong. `FeatureNovelty` keeps the
standardised features of the training prompts and scores a new prompt by its mean distance to
its ``k`` nearest training prompts. The threshold is calibrated on held-out scores: each training
prompt's score against the others (leave one out), so a prompt is flagged when it lies farther
out than all but ``1 - quantile`` of the prompts the bundle did see. Saved as plain arrays
(``novelty.npz``), never pickled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ttc_agent.errors import InvalidRequestError

NOVELTY_FILE = "novelty.npz"


@dataclass
class FeatureNovelty:
    """Distance of prompts' features to a bundle's training prompts, with a calibrated threshold.

    Args:
        k: nearest training prompts a score averages over.
        quantile: the share of held-out (leave-one-out) training scores at or below the
            threshold.
    """

    k: int = 5
    quantile: float = 0.99

    def fit(self, X: np.ndarray) -> FeatureNovelty:
        """Keep the standardised training features ``X`` and calibrate the threshold."""
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or len(X) <= self.k:
            raise InvalidRequestError(f"novelty needs more than k={self.k} training prompts, got {len(X)}")
        self.mean_ = X.mean(axis=0)
        self.scale_ = np.where(X.std(axis=0) > 1e-12, X.std(axis=0), 1.0)
        self.train_ = (X - self.mean_) / self.scale_
        held_out = self._scores(self.train_, leave_one_out=True)
        self.threshold_ = float(np.quantile(held_out, self.quantile))
        return self

    def _scores(self, Z: np.ndarray, leave_one_out: bool = False) -> np.ndarray:
        d = np.sqrt(((Z[:, None, :] - self.train_[None, :, :]) ** 2).sum(axis=-1))
        if leave_one_out:
            np.fill_diagonal(d, np.inf)
        return np.asarray(np.sort(d, axis=1)[:, : self.k].mean(axis=1))

    def score(self, X: np.ndarray) -> np.ndarray:
        """Each prompt's mean distance to its ``k`` nearest training prompts (standardised)."""
        return self._scores((np.atleast_2d(np.asarray(X, dtype=float)) - self.mean_) / self.scale_)

    def is_novel(self, X: np.ndarray) -> np.ndarray:
        """Which prompts lie beyond the calibrated threshold."""
        return self.score(X) > self.threshold_

    def save(self, folder: str | Path) -> None:
        np.savez(
            Path(folder) / NOVELTY_FILE,
            mean=self.mean_,
            scale=self.scale_,
            train=self.train_,
            threshold=self.threshold_,
            k=self.k,
            quantile=self.quantile,
        )

    @classmethod
    def load(cls, folder: str | Path) -> FeatureNovelty | None:
        """The novelty saved in a bundle folder, or ``None`` for a bundle saved without one."""
        path = Path(folder) / NOVELTY_FILE
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as a:
            out = cls(int(a["k"]), float(a["quantile"]))
            out.mean_, out.scale_, out.train_, out.threshold_ = a["mean"], a["scale"], a["train"], float(a["threshold"])
        return out
