"""Fit a probe bundle on the train split of one or more trace folders (what `ttc-agent train` does)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ttc_agent.errors import InvalidRequestError
from ttc_agent.probes.bundle import ProbeBundle
from ttc_agent.probes.predictions import Predictions
from ttc_agent.probes.table import TraceTable, fold_of, split_ids


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
    traces: str | Path | Sequence[str | Path],
    features: str = "text_stats,sentence_embedding",
    latency: str | Path | None = None,
    test_fraction: float = 0.25,
) -> Trained:
    """Fit every probe of the traces' menu on a hash split of the problems and measure the
    held-out rest (`ttc_agent.probes.evaluate.evaluate`). Several trace folders (one per task,
    say) are fitted as one, provided they share a menu and a model."""
    from ttc_agent.probes.evaluate import evaluate

    bundle, table, X = _unfitted(traces, features, latency)
    train, test = split_ids(table.ids, test_fraction)
    if not train or not test:
        raise InvalidRequestError(
            f"{len(table.ids)} problems are too few to hold {test_fraction:.0%} out; collect more"
        )
    bundle.fit_features(X[train], table.subset(train))
    metrics = evaluate(bundle, table.subset(test), X[test])
    return Trained(bundle, table, X, train, test, metrics)


def cross_fit(
    traces: str | Path,
    features: str = "text_stats,sentence_embedding",
    latency: str | Path | None = None,
    folds: int = 5,
) -> tuple[TraceTable, Predictions]:
    """Out-of-fold predictions for every problem of a trace folder: the problems fall into
    ``folds`` groups by a hash of their id, and each group is predicted by a bundle fitted on
    the other groups. Every problem is then held out once, so a policy or a budget manager can
    be evaluated on all of them instead of one test split."""
    if not isinstance(folds, int) or folds < 2:
        raise InvalidRequestError(f"cross-fitting needs folds >= 2, got {folds!r}")
    template, table, X = _unfitted(traces, features, latency)
    fold = np.array([fold_of(pid, folds) for pid in table.ids])
    parts: dict[str, np.ndarray] = {}
    for k in range(folds):
        train, test = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        if not len(test):
            continue
        if len(train) < 2:
            raise InvalidRequestError(f"{len(table.ids)} problems are too few for {folds} folds; collect more")
        bundle = ProbeBundle(template.menu, template.features, latency=template.latency)
        pred = bundle.fit_features(X[train], table.subset(list(train))).predict_features(
            X[test], table.prompt_tokens[test]
        )
        for name in Predictions.FIELDS:
            parts.setdefault(name, np.zeros((len(table.ids), len(template.specs))))[test] = getattr(pred, name)
    return table, Predictions(template.specs, **parts)


def _unfitted(
    traces: str | Path | Sequence[str | Path], features: str, latency: str | Path | None
) -> tuple[ProbeBundle, TraceTable, np.ndarray]:
    """An unfitted bundle for the trace folders' menu and model, their trace table and features."""
    from ttc_agent.evaluation.collect import read_traces, traced_model_name
    from ttc_agent.probes.features import FeatureSet
    from ttc_agent.probes.latency import LatencyModel
    from ttc_agent.strategies.menu import Menu

    folders = [traces] if isinstance(traces, str | Path) else list(traces)
    meta = shared_meta(folders)
    menu = Menu.from_dict(meta["menu"])
    records: list[dict[str, Any]] = []
    seen: dict[str, str | Path] = {}  # problem id -> the folder that traced it
    for folder in folders:
        found = read_traces(folder)
        for pid in dict.fromkeys(rec["problem_id"] for rec in found):
            if pid in seen:
                raise InvalidRequestError(
                    f"problem {pid!r} is traced in both {seen[pid]} and {folder}: pass each trace folder once"
                )
            seen[pid] = folder
        records += found
    table = TraceTable.from_records(records, menu.specs)
    fs = FeatureSet.from_names(features, model=traced_model_name(meta))  # hidden states of the traced model
    lat = LatencyModel.load(latency) if latency else None
    bundle = ProbeBundle(menu, fs, latency=lat, fingerprint=meta["backend"])
    return bundle, table, fs.transform(table.prompts)


def shared_meta(folders: Sequence[str | Path]) -> dict[str, Any]:
    """The first trace folder's meta, once every other folder is checked to share its menu and
    model (`InvalidRequestError` naming both folders and what differs)."""
    from ttc_agent.backends.fingerprint import same_model
    from ttc_agent.evaluation.collect import read_meta

    if not folders:
        raise InvalidRequestError("no trace folder given: pass at least one")
    first = read_meta(folders[0])
    for folder in folders[1:]:
        meta = read_meta(folder)
        if meta["menu"] != first["menu"]:
            raise InvalidRequestError(
                f"{folder} was traced with menu {meta['menu']}, {folders[0]} with {first['menu']}: "
                "fit one bundle only on traces of one menu (replay the pools with the same --menu)"
            )
        if same_model(meta["backend"], first["backend"]) is False:
            raise InvalidRequestError(
                f"{folder} was traced on {meta['backend'].get('model')!r}, {folders[0]} on "
                f"{first['backend'].get('model')!r}: a bundle is fitted on one model's traces"
            )
    return first
