"""`LinearHeads`: every predictor of a fitted bundle folded into one matrix product.

The default predictors are linear in the features once standardised: ridge regression on log
tokens (`TokenRegressor`) and logistic regression, optionally inside sigmoid-calibrated folds
(`AccuracyProbe`). Folding each scaler into its weights and stacking every head of every
strategy turns a menu's ~60 scikit-learn calls per query into one ``X @ W + b`` followed by
elementwise transforms, with the same results. A bundle whose predictors are not all of this
form (a custom ``estimator``) keeps the scikit-learn path: `LinearHeads.compile` returns None.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit
from scipy.stats import norm
from sklearn.calibration import CalibratedClassifierCV
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression, Ridge, RidgeCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ttc_agent.estimators.predictors import TOKENS_QUANTILE

REGRESSION_HEADS = ("tokens", "completion_tokens", "rounds", "seconds")


def _affine(model: Any) -> tuple[np.ndarray, float] | None:
    """``(w, b)`` with ``model``'s decision (or prediction) equal to ``x @ w + b``, else None."""
    if not isinstance(model, Pipeline) or len(model.steps) != 2:
        return None
    scaler, last = (step for _, step in model.steps)
    if not isinstance(scaler, StandardScaler) or not isinstance(last, (Ridge, RidgeCV, LogisticRegression)):
        return None
    coef = np.ravel(last.coef_)
    if coef.shape[0] != scaler.n_features_in_:  # multi-class or multi-output: not a single head
        return None
    mean = scaler.mean_ if scaler.with_mean else 0.0
    scale = scaler.scale_ if scaler.with_std else 1.0
    w = coef / scale
    return w, float(np.ravel(last.intercept_)[0] - np.sum(mean * w))


@dataclass
class _Classifier:
    """One accuracy probe as columns: P = mean over folds of expit(-(a * (x @ w + b) + c)), or a constant."""

    columns: list[tuple[np.ndarray, float]]
    a: list[float]
    c: list[float]
    constant: float | None = None


def _classifier(probe: Any) -> _Classifier | None:
    model = getattr(probe, "model_", None)
    if isinstance(model, DummyClassifier):
        labels = list(getattr(probe, "classes_", ()))
        # One label seen: P(right) is 1 when it was 1. (Probes saved before 0.2 list both labels
        # and fitted the dummy on the raw label.)
        only = labels[0] if len(labels) == 1 else model.classes_[0]
        return _Classifier([], [], [], constant=1.0 if only == 1 else 0.0)
    if isinstance(model, CalibratedClassifierCV):
        if model.method != "sigmoid" or list(model.classes_) != [0, 1]:
            return None
        cols, a, c = [], [], []
        for fold in model.calibrated_classifiers_:
            form = _affine(fold.estimator)
            if form is None:
                return None
            cols.append(form)
            a.append(float(fold.calibrators[0].a_))
            c.append(float(fold.calibrators[0].b_))
        return _Classifier(cols, a, c)
    form = _affine(model)
    if form is None or model is None or list(model.classes_) != [0, 1]:
        return None
    return _Classifier([form], [-1.0], [0.0])


@dataclass
class LinearHeads:
    """A menu's predictors as one weight matrix; `predict` gives each head's (queries x strategies) array."""

    specs: tuple[str, ...]
    heads: tuple[str, ...]
    weights: np.ndarray  # features x (regression columns + classifier fold columns)
    bias: np.ndarray
    sigma_tokens: np.ndarray  # per strategy, the log-scale residual spread of the tokens head
    calib_a: np.ndarray
    calib_c: np.ndarray
    fold_mean: np.ndarray  # classifier fold columns x strategies, averaging each probe's folds
    constant: np.ndarray  # per strategy, added to the averaged folds (a one-class probe)

    @classmethod
    def compile(cls, specs: Sequence[str], models: Mapping[str, Mapping[str, Any]]) -> LinearHeads | None:
        """Fold the fitted ``models`` (``{spec: {head: estimator}}``) into one matrix, or None
        when one of them is not linear."""
        heads = tuple(h for h in REGRESSION_HEADS if all(h in models[s] for s in specs))
        reg_cols, classifiers = [], []
        for head in heads:
            for spec in specs:
                form = _affine(getattr(models[spec][head], "model_", None))
                if form is None:
                    return None
                reg_cols.append(form)
        for spec in specs:
            clf = _classifier(models[spec]["accuracy"])
            if clf is None:
                return None
            classifiers.append(clf)
        fold_cols = [col for clf in classifiers for col in clf.columns]
        fold_mean = np.zeros((len(fold_cols), len(specs)))
        row = 0
        for j, clf in enumerate(classifiers):
            k = len(clf.columns)
            if k:  # a one-class probe has no columns, only its constant
                fold_mean[row : row + k, j] = 1.0 / k
            row += k
        cols = reg_cols + fold_cols
        return cls(
            specs=tuple(specs),
            heads=heads,
            weights=np.column_stack([w for w, _ in cols]),
            bias=np.array([b for _, b in cols]),
            sigma_tokens=np.array([models[s]["tokens"].sigma_ for s in specs]),
            calib_a=np.array([a for clf in classifiers for a in clf.a]),
            calib_c=np.array([c for clf in classifiers for c in clf.c]),
            fold_mean=fold_mean,
            constant=np.array([clf.constant or 0.0 for clf in classifiers]),
        )

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """``accuracy``, ``tokens_q90`` and every regression head, each (queries x strategies)."""
        z = np.asarray(X, dtype=float) @ self.weights + self.bias
        s = len(self.specs)
        out: dict[str, np.ndarray] = {}
        for i, head in enumerate(self.heads):
            out[head] = np.expm1(z[:, i * s : (i + 1) * s]).clip(min=0)
        log_tokens = z[:, self.heads.index("tokens") * s : (self.heads.index("tokens") + 1) * s]
        out["tokens_q90"] = np.expm1(log_tokens + norm.ppf(TOKENS_QUANTILE) * self.sigma_tokens).clip(min=0)
        folds = z[:, len(self.heads) * s :]
        out["accuracy"] = expit(-(self.calib_a * folds + self.calib_c)) @ self.fold_mean + self.constant
        return out
