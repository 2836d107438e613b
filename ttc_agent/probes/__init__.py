"""Predict each strategy's accuracy, tokens and seconds for a query, from cheap features.

- features: `TextStats`, `SentenceEmbedding`, `PromptHiddenState`, combined with `FeatureSet`;
- predictors: `AccuracyProbe` (calibrated classifier), `TokenRegressor`, `LatencyModel`;
- `ProbeBundle`: all of them for one menu, fitted from traces, saved without pickles.
"""

from ttc_agent.estimators import AccuracyProbe, TextStats, TokenRegressor
from ttc_agent.probes.bundle import ProbeBundle, ProbeMismatchError
from ttc_agent.probes.features import FeatureSet, PromptHiddenState, SentenceEmbedding
from ttc_agent.probes.latency import LatencyModel, profile
from ttc_agent.probes.predictions import Predictions
from ttc_agent.probes.table import TraceTable, split_ids

__all__ = [
    "AccuracyProbe",
    "FeatureSet",
    "LatencyModel",
    "Predictions",
    "ProbeBundle",
    "ProbeMismatchError",
    "PromptHiddenState",
    "SentenceEmbedding",
    "TextStats",
    "TokenRegressor",
    "TraceTable",
    "profile",
    "split_ids",
]
