"""scikit-learn's own estimator checks on every estimator ttc-agent defines."""

from __future__ import annotations

from sklearn.base import is_classifier, is_regressor
from sklearn.utils.estimator_checks import parametrize_with_checks

from ttc_agent.probes.predictors import AccuracyProbe, TokenRegressor


@parametrize_with_checks([AccuracyProbe(), AccuracyProbe(calibrate=False), TokenRegressor(), TokenRegressor(alpha=1.0)])
def test_sklearn_conventions(estimator, check):
    check(estimator)


def test_mixins_come_first_so_sklearn_knows_the_kind():
    assert is_classifier(AccuracyProbe()) and not is_regressor(AccuracyProbe())
    assert is_regressor(TokenRegressor()) and not is_classifier(TokenRegressor())
