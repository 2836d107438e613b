"""Held-out quality of a probe bundle: AUROC, Brier, ECE, token and latency MAPE per strategy."""

from __future__ import annotations

from typing import Any

import numpy as np

from ttc_agent.probes.bundle import ProbeBundle
from ttc_agent.probes.metrics import auroc, brier, ece, mape
from ttc_agent.probes.predictions import Predictions
from ttc_agent.probes.table import TraceTable


def runs_within_q90(table: TraceTable, preds: Predictions) -> dict[str, float]:
    """Per strategy, the share of ``table``'s runs whose total tokens stay within the q90 that
    ``preds`` (one row per problem of ``table``) gives their problem: about 0.9 when the
    quantile that budget checks trust is honest."""
    return {
        spec: float(
            np.mean(
                [r["total_tokens"] <= preds.tokens_q90[i, j] for i, runs in enumerate(table.runs[spec]) for r in runs]
            )
        )
        for j, spec in enumerate(preds.specs)
    }


def evaluate(bundle: ProbeBundle, table: TraceTable, X: np.ndarray | None = None) -> dict[str, dict[str, Any]]:
    """Per strategy: accuracy-probe AUROC, Brier score and ECE on the runs of ``table``, the
    MAPE of predicted (median) total tokens and seconds against each problem's mean, and the
    share of runs whose total tokens stay within the predicted q90 (what budget checks trust;
    about 0.9 when the quantile is honest)."""
    X = bundle.features.transform(table.prompts) if X is None else X
    preds = bundle.predict_features(X, table.prompt_tokens)
    within = runs_within_q90(table, preds)
    out = {}
    for j, spec in enumerate(bundle.specs):
        idx, y = table.run_rows(spec)
        p = preds.accuracy[idx, j]
        out[spec] = {
            "auroc": auroc(y, p),
            "brier": brier(y, p),
            "ece": ece(y, p),
            "accuracy": float(y.mean()),
            "predicted_accuracy": float(p.mean()),
            "tokens_mape": mape(table.mean(spec, "total_tokens"), preds.tokens[:, j]),
            "seconds_mape": mape(table.mean(spec, "seconds"), preds.seconds[:, j]),
            "tokens_q90_coverage": within[spec],
            "problems": len(table.ids),
            "runs": int(len(y)),
        }
    return out
