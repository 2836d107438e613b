"""Estimators shared by the probes and the learned verifier, below both in the layers: the
calibrated accuracy classifier and token regressor (`predictors`), and hand-made text signals
(`text`)."""

from ttc_agent.estimators.predictors import TOKENS_QUANTILE, AccuracyProbe, TokenRegressor, logistic
from ttc_agent.estimators.text import TextStats, prompt_text

__all__ = ["TOKENS_QUANTILE", "AccuracyProbe", "TextStats", "TokenRegressor", "logistic", "prompt_text"]
