"""Fit a probe bundle on the train split of a trace folder (what `ttc-agent train` does)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ttc_agent.errors import InvalidRequestError
from ttc_agent.probes.bundle import ProbeBundle, TraceTable, split_ids


@dataclass
class Trained:
    """A fitted bundle with its traces, features and split (``test`` indexes held-out problems)."""

    bundle: ProbeBundle
    table: TraceTable
    X: np.ndarray
    train: list[int]
    test: list[int]
    metrics: dict[str, Any]


def train_from_traces(
    traces: str | Path,
    features: str = "text_stats,sentence_embedding",
    latency: str | Path | None = None,
    test_fraction: float = 0.25,
) -> Trained:
    """Fit every probe of the traces' menu on a hash split of the problems and measure the
    held-out rest (`ttc_agent.probes.evaluate.evaluate`)."""
    from ttc_agent.evaluation.collect import read_meta, read_traces
    from ttc_agent.evaluation.menu import Menu
    from ttc_agent.probes.evaluate import evaluate
    from ttc_agent.probes.features import FeatureSet
    from ttc_agent.probes.latency import LatencyModel

    meta = read_meta(traces)
    menu = Menu.from_dict(meta["menu"])
    table = TraceTable.from_records(read_traces(traces), menu.specs)
    fs = FeatureSet.from_names(features)
    lat = LatencyModel.load(latency) if latency else None
    X = fs.transform(table.prompts)
    train, test = split_ids(table.ids, test_fraction)
    if not train or not test:
        raise InvalidRequestError(
            f"{len(table.ids)} problems are too few to hold {test_fraction:.0%} out; collect more"
        )
    bundle = ProbeBundle(menu, fs, latency=lat, fingerprint=meta["backend"])
    bundle.fit_features(X[train], table.subset(train))
    metrics = evaluate(bundle, table.subset(test), X[test])
    return Trained(bundle, table, X, train, test, metrics)
