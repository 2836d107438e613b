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
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ttc_agent.errors import InvalidRequestError


def logistic(C: float = 0.5) -> Pipeline:
    """The default accuracy model: standardised features, L2 logistic regression."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))


class AccuracyProbe(ClassifierMixin, BaseEstimator):
    """P(strategy answers correctly | query features), a calibrated classifier.

    ``fit(X, y)`` takes one row per run (a query run k times gives k rows with 0/1 labels), so
    the probe learns a probability, not a coin flip. ``estimator`` is any unfitted scikit-learn
    classifier with ``predict_proba`` (cloned at fit, as scikit-learn's meta-estimators do; by
    default logistic regression with inverse regularisation ``C``); it is wrapped in sigmoid
    calibration (``CalibratedClassifierCV``) when each class has at least ``2 * cv`` examples.
    With one class only, the probe predicts its frequency. Labels are binary (``0``/``1`` for
    wrong/right in traces; any two labels work, ``classes_`` holds them sorted).
    """

    def __init__(
        self, estimator: BaseEstimator | None = None, calibrate: bool = True, cv: int = 3, C: float = 0.5
    ) -> None:
        self.estimator = estimator
        self.calibrate = calibrate
        self.cv = cv
        self.C = C

    def fit(self, X: np.ndarray, y: np.ndarray) -> AccuracyProbe:
        """Fit on one row of query features per run (``X``) and its binary label (``y``)."""
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        if self.estimator is not None and not hasattr(self.estimator, "predict_proba"):
            raise InvalidRequestError(
                f"an accuracy probe needs a classifier with predict_proba, got {self.estimator!r}"
            )
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) > 2:
            raise InvalidRequestError(
                "Only binary classification is supported: an accuracy probe predicts right/wrong, and y has "
                f"{len(self.classes_)} labels {list(self.classes_)}"
            )
        base = clone(self.estimator) if self.estimator is not None else logistic(self.C)
        counts = np.bincount(codes, minlength=2)
        if len(self.classes_) == 1:
            self.model_ = DummyClassifier(strategy="prior").fit(X, codes)
        elif self.calibrate and counts.min() >= 2 * self.cv:
            # Shuffled folds: traces come sorted (by problem, so by level), and contiguous folds
            # would calibrate each model on difficulties it never saw, which can invert it.
            folds = StratifiedKFold(n_splits=self.cv, shuffle=True, random_state=0)
            self.model_ = CalibratedClassifierCV(base, method="sigmoid", cv=folds).fit(X, codes)
        else:
            self.model_ = clone(base).fit(X, codes)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Per row, the probability of each class of ``classes_`` (one column per class)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        proba = np.asarray(self.model_.predict_proba(X))
        if len(self.classes_) == 1:  # fitted on one label: it is certain
            return np.ones((len(X), 1))
        if proba.shape[1] == 1:  # saved before 0.2: two classes_, the model fitted on one label
            p = proba[:, 0]
            return np.column_stack([1 - p, p] if int(self.model_.classes_[0]) == 1 else [p, 1 - p])
        return proba

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The more probable label of each row."""
        check_is_fitted(self)
        return np.asarray(self.classes_[self.predict_proba(X).argmax(axis=1)])

    def predict_right(self, X: np.ndarray) -> np.ndarray:
        """P(right) per row: the probability of label ``1`` (``True``), 0 where it was never seen."""
        proba = self.predict_proba(X)
        hits = [i for i, c in enumerate(self.classes_) if c == 1]
        return proba[:, hits[0]] if hits else np.zeros(len(proba))

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


ALPHAS = tuple(float(a) for a in np.logspace(-1, 5, 13))
#: The quantile of a strategy's tokens that hard budget checks use (``Predictions.tokens_q90``).
TOKENS_QUANTILE = 0.9


class TokenRegressor(RegressorMixin, BaseEstimator):
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

    def fit(self, X: np.ndarray, y: np.ndarray, runs: Sequence[Sequence[float]] | None = None) -> TokenRegressor:
        """Fit on one token count per query (``y``: the mean of its runs, >= 0). ``runs``, when
        given, holds each query's individual runs: the quantiles then cover a single run, whose
        spread around its query's left-out prediction is wider than the mean's."""
        X, y = validate_data(self, X, y, y_numeric=True)
        if np.any(y < 0):
            raise InvalidRequestError(f"token counts must be >= 0, got a minimum of {float(np.min(y))}")
        if len(y) < 2:
            raise InvalidRequestError(f"a token regressor needs at least two queries, got n_samples={len(y)}")
        target = np.log1p(np.asarray(y, dtype=float))
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
        """The median token count per row."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return np.asarray(np.expm1(self.model_.predict(X)).clip(min=0))

    def predict_quantile(self, X: np.ndarray, q: float) -> np.ndarray:
        """The ``q`` quantile of the token count per row (a single run's, when fitted with ``runs``)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return np.asarray(np.expm1(self.model_.predict(X) + norm.ppf(q) * self.sigma_).clip(min=0))

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True
        return tags
