"""Per-strategy predictors: an accuracy probe (calibrated classifier) and a token regressor."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import norm
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ttc_agent.errors import InvalidRequestError


def logistic(C: float = 0.5) -> Pipeline:
    """The default accuracy model: standardised features, L2 logistic regression."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))


class AccuracyProbe(BaseEstimator, ClassifierMixin):
    """P(strategy answers correctly | query features), a calibrated classifier.

    ``fit(X, y)`` takes one row per run (a query run k times gives k rows with 0/1 labels), so
    the probe learns a probability, not a coin flip. ``estimator`` is any unfitted scikit-learn
    classifier with ``predict_proba`` (cloned at fit, as scikit-learn's meta-estimators do; by
    default logistic regression with inverse regularisation ``C``); it is wrapped in sigmoid
    calibration (``CalibratedClassifierCV``) when each class has at least ``2 * cv`` examples.
    With one class only, the probe predicts its frequency.
    """

    def __init__(
        self, estimator: BaseEstimator | None = None, calibrate: bool = True, cv: int = 3, C: float = 0.5
    ) -> None:
        self.estimator = estimator
        self.calibrate = calibrate
        self.cv = cv
        self.C = C

    def fit(self, X: np.ndarray, y: np.ndarray) -> AccuracyProbe:
        y = np.asarray(y).astype(int)
        if self.estimator is not None and not hasattr(self.estimator, "predict_proba"):
            raise InvalidRequestError(
                f"an accuracy probe needs a classifier with predict_proba, got {self.estimator!r}"
            )
        base = clone(self.estimator) if self.estimator is not None else logistic(self.C)
        counts = np.bincount(y, minlength=2)
        if counts.min() == 0:
            self.model_ = DummyClassifier(strategy="prior").fit(X, y)
        elif self.calibrate and counts.min() >= 2 * self.cv:
            # Shuffled folds: traces come sorted (by problem, so by level), and contiguous folds
            # would calibrate each model on difficulties it never saw, which can invert it.
            folds = StratifiedKFold(n_splits=self.cv, shuffle=True, random_state=0)
            self.model_ = CalibratedClassifierCV(base, method="sigmoid", cv=folds).fit(X, y)
        else:
            self.model_ = clone(base).fit(X, y)
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        proba = self.model_.predict_proba(X)
        if proba.shape[1] == 1:  # fitted on one class
            only = int(self.model_.classes_[0])
            return (
                np.column_stack([1 - proba[:, 0], proba[:, 0]])
                if only == 1
                else np.column_stack([proba[:, 0], 1 - proba[:, 0]])
            )
        return proba

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


ALPHAS = tuple(float(a) for a in np.logspace(-1, 5, 13))
#: The quantile of a strategy's tokens that hard budget checks use (``Predictions.tokens_q90``).
TOKENS_QUANTILE = 0.9


class TokenRegressor(BaseEstimator, RegressorMixin):
    """Predicts a strategy's token count from query features (ridge regression on log tokens).

    ``alpha`` is the ridge penalty; ``None`` (the default) picks it from ``ALPHAS`` by
    leave-one-out cross-validation on the training data (`RidgeCV`), which matters when a
    few dozen queries meet hundreds of embedding features. ``predict`` gives the median,
    ``predict_quantile(X, 0.9)`` a high quantile, for budget checks that must not be overrun.

    The quantiles model log tokens as normal around the prediction with spread ``sigma_``,
    set so that the 90% quantile is the 90th percentile of the *leave-one-out* residuals: each
    training query's error when it was left out of the fit. In-sample residuals of a fit with
    hundreds of features are far too small (a q90 from them covered 50-60% of held-out GSM8K
    runs for some strategies).
    """

    def __init__(self, alpha: float | None = None) -> None:
        self.alpha = alpha

    def fit(self, X: np.ndarray, tokens: np.ndarray, runs: Sequence[Sequence[float]] | None = None) -> TokenRegressor:
        """Fit on one token count per query (``tokens``: the mean of its runs). ``runs``, when
        given, holds each query's individual runs: the quantiles then cover a single run, whose
        spread around its query's left-out prediction is wider than the mean's."""
        target = np.log1p(np.asarray(tokens, dtype=float))
        alphas = list(ALPHAS) if self.alpha is None else [float(self.alpha)]
        # With a scoring, RidgeCV keeps each query's leave-one-out prediction per alpha.
        ridge = RidgeCV(alphas=alphas, scoring="neg_mean_squared_error", store_cv_results=True)
        self.model_ = make_pipeline(StandardScaler(), ridge).fit(X, target)
        self.sigma_ = 0.0
        if len(target) > 1:
            left_out = ridge.cv_results_[:, alphas.index(ridge.alpha_)]
            if runs is None:
                residuals = target - left_out
            else:
                residuals = np.concatenate(
                    [np.log1p(np.asarray(r, dtype=float)) - p for r, p in zip(runs, left_out, strict=True)]
                )
            high = float(np.quantile(residuals, TOKENS_QUANTILE))
            self.sigma_ = max(high, 0.0) / float(norm.ppf(TOKENS_QUANTILE))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.expm1(self.model_.predict(X)).clip(min=0)

    def predict_quantile(self, X: np.ndarray, q: float) -> np.ndarray:
        return np.expm1(self.model_.predict(X) + norm.ppf(q) * self.sigma_).clip(min=0)
