"""The stage-2 decision of a two-stage strategy: continue or not, priced in tokens and seconds.

`stage2_model` is a scikit-learn pipeline (standardised features, logistic regression) that
reads one row per question and option: the first stage's signals (`ttc_agent.strategies.
two_stage.SIGNALS`), the option's share of the cap, and their products, and predicts whether
the vote after taking that option is right. `Stage2Policy` turns its predictions, the first
stage's measured tokens and seconds and the call's prices into the choice: another round of
``m`` samples costs ``m`` times the first stage's mean sample plus the prompt, and a round's
seconds (scaled by a `LatencyModel` from ``k`` to ``m`` samples when one is given; a parallel
backend's round costs about the same whatever its width). `stage2_rows` builds the training
rows from trace pools.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ttc_agent.probes.latency import LatencyModel
from ttc_agent.strategies.two_stage import StageOne


def stage2_design(signals: np.ndarray, options: Sequence[int]) -> np.ndarray:
    """One row per option: the signals, the option's share of the largest option, and the
    signals times that share (so each signal may matter more the more is drawn)."""
    share = np.asarray(options, dtype=float) / max(max(options), 1)
    rows = np.repeat(np.atleast_2d(signals), len(options), axis=0)
    return np.column_stack([rows, share, rows * share[:, None]])


def stage2_model(C: float = 1.0) -> Pipeline:
    """An unfitted stage-2 model: ``fit(X, y)`` on `stage2_design` rows and 0/1 correctness."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))


@dataclass
class Stage2Policy:
    """A `Continuation` that prices each option with a fitted `stage2_model`.

    Args:
        model: a fitted `stage2_model`.
        lambda_tokens: the call's price of a token.
        lambda_seconds: the call's price of a second.
        latency: scales a round's seconds from the first stage's ``k`` samples to ``m``.
    """

    model: Pipeline
    lambda_tokens: float = 0.0
    lambda_seconds: float = 0.0
    latency: LatencyModel | None = None

    def predict(self, stage: StageOne) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each option's predicted accuracy, extra tokens and extra seconds."""
        options = np.asarray(stage.options, dtype=float)
        accuracy = self.model.predict_proba(stage2_design(stage.signals, stage.options))[:, 1]
        tokens = np.where(options > 0, options * stage.mean_tokens + stage.prompt_tokens, 0.0)
        if self.latency is None:
            ratio = np.ones_like(options)
        else:
            base = float(self.latency.round_seconds(stage.prompt_tokens, stage.drawn, stage.mean_tokens)[0])
            ratio = self.latency.round_seconds(stage.prompt_tokens, np.maximum(options, 1), stage.mean_tokens) / max(
                base, 1e-9
            )
        seconds = np.where(options > 0, stage.seconds * ratio, 0.0)
        return accuracy, tokens, seconds

    def choose(self, stage: StageOne) -> int:
        accuracy, tokens, seconds = self.predict(stage)
        return int(np.argmax(accuracy - self.lambda_tokens * tokens - self.lambda_seconds * seconds))
