"""Predict each strategy's accuracy, tokens and seconds for a query, from cheap features.

- features: `TextStats`, `SentenceEmbedding`, `PromptHiddenState`, combined with `FeatureSet`;
- predictors: `AccuracyProbe` (calibrated classifier), `TokenRegressor`, `LatencyModel`;
- `ProbeBundle`: all of them for one menu, fitted from traces, saved without pickles.
"""

from ttc_agent.probes.bundle import Predictions, ProbeBundle, ProbeMismatchError, TraceTable, split_ids
from ttc_agent.probes.features import FeatureSet, PromptHiddenState, SentenceEmbedding, TextStats
from ttc_agent.probes.latency import LatencyModel, profile
from ttc_agent.probes.predictors import AccuracyProbe, TokenRegressor

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
