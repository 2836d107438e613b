"""Metrics for probes: discrimination, calibration, and relative error."""

from __future__ import annotations

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, mean_absolute_percentage_error, roc_auc_score

from ttc_agent.errors import InvalidRequestError


def auroc(y: np.ndarray, p: np.ndarray) -> float | None:
    """Area under the ROC curve; ``None`` when ``y`` holds one class only."""
    y = np.asarray(y)
    return None if len(np.unique(y)) < 2 else float(roc_auc_score(y, p))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared error of the predicted probabilities."""
    return float(brier_score_loss(np.asarray(y), np.clip(p, 0, 1)))


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[tuple[float, float, int]]:
    """Per non-empty equal-width bin: mean predicted probability, observed frequency and count
    (scikit-learn's `calibration_curve`, with the counts a reliability diagram shows)."""
    y, p = np.asarray(y, dtype=float), np.clip(np.asarray(p, dtype=float), 0, 1)
    frequency, predicted = calibration_curve(y, p, n_bins=bins, strategy="uniform")
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, bins + 1)[1:-1], p), minlength=bins)
    return [(float(m), float(f), int(c)) for m, f, c in zip(predicted, frequency, counts[counts > 0], strict=True)]


def ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over equal-width probability bins (the `reliability` bins,
    weighted by their share of the predictions)."""
    curve = reliability(y, p, bins)
    n = sum(c for _, _, c in curve)
    return float(sum(c / n * abs(f - m) for m, f, c in curve))


def mape(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Mean absolute percentage error (as a fraction; 0.25 = 25%; scikit-learn's)."""
    return float(mean_absolute_percentage_error(np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)))


def mape_floor(actual: np.ndarray, groups: np.ndarray) -> float:
    """The lowest MAPE a predictor that sees only each value's group can reach, in-sample: one
    constant per group, the median of its values weighted by ``1 / value`` (which minimises
    the sum of ``|value - c| / value``). A probe that reads nothing more than the group
    (a question's level, say) cannot beat it; actual values must be positive."""
    actual, groups = np.asarray(actual, dtype=float), np.asarray(groups)
    if actual.shape != groups.shape or not len(actual):
        raise InvalidRequestError(f"need one group per value, got {actual.shape} values and {groups.shape} groups")
    if np.any(actual <= 0):
        raise InvalidRequestError(f"values must be positive, got a minimum of {float(actual.min())}")
    total = 0.0
    for g in np.unique(groups):
        y = np.sort(actual[groups == g])
        w = np.cumsum(1 / y)
        c = y[np.searchsorted(w, w[-1] / 2)]
        total += float(np.sum(np.abs(y - c) / y))
    return total / len(actual)
