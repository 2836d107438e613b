"""The probes' per-strategy predictors (they live in `ttc_agent.estimators.predictors`, which the
learned verifier shares); this path stays, and probe files saved under it load."""

from ttc_agent.estimators.predictors import ALPHAS, TOKENS_QUANTILE, AccuracyProbe, TokenRegressor, logistic

__all__ = ["ALPHAS", "TOKENS_QUANTILE", "AccuracyProbe", "TokenRegressor", "logistic"]
