"""Offline replay of policies on held-out traces: no generation, only the recorded outcomes.

For each query the traces hold every strategy's measured correctness (mean over repeats),
tokens and seconds. A policy's choices are scored against them, so static strategies, the
adaptive policy at many prices and the hindsight oracle compare on the same queries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ttc_agent.errors import InvalidRequestError
from ttc_agent.plotting import plot_replay
from ttc_agent.policy import CallLimits, OraclePolicy, UtilityPolicy
from ttc_agent.probes.predictions import Predictions
from ttc_agent.probes.table import TraceTable

COSTS = ("tokens", "seconds")
#: The name `plot_replay` had when it lived here.
plot = plot_replay


@dataclass(frozen=True)
class Outcomes:
    """Measured per query and strategy: mean correctness, tokens and seconds."""

    specs: tuple[str, ...]
    correct: np.ndarray
    tokens: np.ndarray
    seconds: np.ndarray
    levels: np.ndarray

    @classmethod
    def from_table(cls, table: TraceTable, specs: tuple[str, ...]) -> Outcomes:
        cols = {f: np.column_stack([table.mean(s, f) for s in specs]) for f in ("correct", "total_tokens", "seconds")}
        levels = np.array([table.runs[specs[0]][i][0].get("level", 0) for i in range(len(table.ids))])
        return cls(specs, cols["correct"], cols["total_tokens"], cols["seconds"], levels)

    def score(self, chosen: np.ndarray, rows: np.ndarray | None = None) -> dict[str, float]:
        """Accuracy, mean tokens and mean seconds of per-query choices (optionally on ``rows``)."""
        rows = np.arange(len(chosen)) if rows is None else rows
        picked = chosen[rows]
        return {
            "accuracy": float(self.correct[rows, picked].mean()),
            "tokens": float(self.tokens[rows, picked].mean()),
            "seconds": float(self.seconds[rows, picked].mean()),
        }


#: Choices per query, with the outcomes they are scored on.
Scored = tuple[Outcomes, np.ndarray]


def _envelope_at(points: list[dict[str, float]], cost: str, budget: float) -> float | None:
    """Best accuracy among operating points that cost no more than ``budget`` on average."""
    ok = [p["accuracy"] for p in points if p[cost] <= budget * (1 + 1e-9)]
    return max(ok) if ok else None


def _cost_for(points: list[dict[str, float]], cost: str, accuracy: float) -> float | None:
    """Smallest mean cost among operating points reaching ``accuracy``."""
    ok = [p[cost] for p in points if p["accuracy"] >= accuracy - 1e-9]
    return min(ok) if ok else None


def replay(
    table: TraceTable,
    pred: Predictions,
    *,
    lambdas: int = 40,
    bootstrap: int = 500,
    seed: int = 0,
    priced: Callable[[CallLimits], Outcomes] | None = None,
) -> dict[str, Any]:
    """Replay static, adaptive and oracle policies; compare them at matched cost and accuracy.

    For each cost (tokens, seconds): the adaptive policy and the oracle sweep that cost's price
    over a log grid (the other price 0). Against the most accurate static strategy it reports
    the adaptive accuracy at the static's mean cost, the adaptive cost at the static's accuracy,
    and the share of the static-to-oracle gap the adaptive policy closes at that cost, each
    with a 95% bootstrap interval over queries.

    ``priced`` gives the outcomes at a price where they depend on it (a two-stage strategy
    whose second stage is itself priced): the adaptive policy and the oracle at each price are
    scored on ``priced(limits)``, the static strategies on ``table`` (where a strategy runs its
    own default rule).
    """
    out, samples, static, best_static = _baselines(table, pred, bootstrap, seed)
    n = len(table.ids)
    result: dict[str, Any] = {"queries": n, "static": static, "best_static": best_static}
    for cost in COSTS:
        adaptive_choices: list[tuple[float, Scored]] = []
        oracle_choices: list[Scored] = []
        for lam in _price_grid(pred, cost, lambdas):
            limits = CallLimits(**{f"lambda_{cost}": lam})
            at = out if priced is None else priced(limits)
            adaptive_choices.append((lam, (at, UtilityPolicy().choose(pred, limits))))
            oracle_choices.append((at, OraclePolicy(at.correct, at.tokens, at.seconds).choose(limits=limits)))
        adaptive = [{"lambda": lam, **at.score(c)} for lam, (at, c) in adaptive_choices]
        oracle_pts = [at.score(c) for at, c in oracle_choices]
        static_choice = np.full(n, pred.specs.index(best_static))
        sweeps = ([s for _, s in adaptive_choices], oracle_choices, static_choice)
        point = _matched(out, cost, *sweeps, rows=None)
        boot = [_matched(out, cost, *sweeps, rows=rows) for rows in samples]
        intervals = {}
        for key in point:
            values = [float(v) for b in boot if (v := b[key]) is not None]
            intervals[key] = (
                None
                if len(values) < bootstrap // 2
                else [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]
            )
        result[cost] = {
            "adaptive": adaptive,
            "oracle": oracle_pts,
            "best_static": static[best_static],
            **point,
            "ci95": intervals,
        }
    result["choices_by_level"] = choices_by_level(out, pred, result)
    return result


def menu_ablation(
    table: TraceTable,
    pred: Predictions,
    without: Sequence[str],
    *,
    lambdas: int = 40,
    bootstrap: int = 500,
    seed: int = 0,
) -> dict[str, Any]:
    """The adaptive policy choosing from the whole menu against the same policy with the
    strategies ``without`` taken off, at equal cost.

    For each cost (tokens, seconds) both policies sweep that cost's price over one log grid;
    at the most accurate static strategy's mean cost it reports each policy's accuracy, its
    share of the static-to-oracle gap closed (one oracle: the whole menu's), the paired
    accuracy difference with a 95% bootstrap interval over queries, and how often the whole
    menu's policy picked one of the strategies ``without`` there; ``by_budget`` holds the same
    at every static strategy's mean cost (the most accurate one may be the cheapest, where
    nothing else is affordable).
    """
    dropped = [s for s in without if s in pred.specs]
    if not dropped:
        raise InvalidRequestError(f"none of {list(without)} is on the menu {list(pred.specs)}")
    keep = np.array([j for j, s in enumerate(pred.specs) if s not in dropped])
    if not len(keep):
        raise InvalidRequestError(f"taking {dropped} off the menu {list(pred.specs)} leaves nothing")
    reduced = pred.take_strategies(keep.tolist())
    out, samples, _, best_static = _baselines(table, pred, bootstrap, seed)
    oracle = OraclePolicy(out.correct, out.tokens, out.seconds)
    is_dropped = np.isin(np.arange(len(pred.specs)), keep, invert=True)
    result: dict[str, Any] = {"queries": len(table.ids), "without": dropped, "best_static": best_static}
    for cost in COSTS:
        whole, cut, ceiling = [], [], []
        for lam in _price_grid(pred, cost, lambdas):
            limits = CallLimits(**{f"lambda_{cost}": lam})
            whole.append(UtilityPolicy().choose(pred, limits))
            cut.append(keep[UtilityPolicy().choose(reduced, limits)])
            ceiling.append(oracle.choose(limits=limits))
        # Each bootstrap resample's operating points, scored once for every budget below.
        resampled = [([out.score(c, rows) for c in whole], [out.score(c, rows) for c in cut]) for rows in samples]
        rows = {
            spec: _ablation_at(
                out, cost, (whole, cut, ceiling), np.full(len(table.ids), j), samples, resampled, is_dropped
            )
            for j, spec in enumerate(pred.specs)
        }
        result[cost] = {**rows[best_static], "by_budget": rows}
    return result


def _ablation_at(
    out: Outcomes,
    cost: str,
    sweeps: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]],
    static_choice: np.ndarray,
    samples: list[np.ndarray],
    resampled: list[tuple[list[dict[str, float]], list[dict[str, float]]]],
    is_dropped: np.ndarray,
) -> dict[str, Any]:
    """`menu_ablation` at one static strategy's mean cost: both policies' matched figures, the
    paired difference with its bootstrap interval (``resampled``: both sweeps' operating points
    on each of ``samples``), and the share choosing the dropped ones."""
    whole, cut, ceiling = sweeps
    ceiling_scored = [(out, c) for c in ceiling]
    with_all = _matched(out, cost, [(out, c) for c in whole], ceiling_scored, static_choice, rows=None)
    without_them = _matched(out, cost, [(out, c) for c in cut], ceiling_scored, static_choice, rows=None)
    diffs = []
    for rows, (whole_points, cut_points) in zip(samples, resampled, strict=True):
        spend = out.score(static_choice, rows)[cost]
        a, b = _envelope_at(whole_points, cost, spend), _envelope_at(cut_points, cost, spend)
        if a is not None and b is not None:
            diffs.append(a - b)
    budget = out.score(static_choice)[cost]
    points = [out.score(c) for c in whole]
    affordable = [i for i, p in enumerate(points) if p[cost] <= budget * (1 + 1e-9)]
    at_budget = whole[max(affordable, key=lambda i: points[i]["accuracy"])] if affordable else None
    a, b = with_all["adaptive_accuracy_at_static_cost"], without_them["adaptive_accuracy_at_static_cost"]
    return {
        "budget": budget,
        "with": with_all,
        "without": without_them,
        "difference": None if a is None or b is None else a - b,
        "ci95_difference": (
            [float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))]
            if len(diffs) >= len(samples) // 2
            else None
        ),
        "share_choosing_them": None if at_budget is None else float(is_dropped[at_budget].mean()),
    }


def _baselines(
    table: TraceTable, pred: Predictions, bootstrap: int, seed: int
) -> tuple[Outcomes, list[np.ndarray], dict[str, dict[str, float]], str]:
    """The measured outcomes, the bootstrap resamples of the queries, every static strategy's
    score and the most accurate static strategy (the cheaper on ties)."""
    out = Outcomes.from_table(table, pred.specs)
    n = len(table.ids)
    rng = np.random.default_rng(seed)
    samples = [rng.integers(0, n, n) for _ in range(bootstrap)]
    static = {s: out.score(np.full(n, j)) for j, s in enumerate(pred.specs)}
    best_static = max(static, key=lambda s: (static[s]["accuracy"], -static[s]["tokens"]))
    return out, samples, static, best_static


def _price_grid(pred: Predictions, cost: str, lambdas: int) -> list[float]:
    """Zero, then ``lambdas`` prices of ``cost`` on a log grid scaled by its median prediction."""
    scale = float(np.median(getattr(pred, cost)))
    return [0.0, *(np.geomspace(1e-3, 10, lambdas) / max(scale, 1e-9)).tolist()]


def _matched(
    out: Outcomes,
    cost: str,
    adaptive: list[Scored],
    oracle: list[Scored],
    static: np.ndarray,
    rows: np.ndarray | None,
) -> dict[str, float | None]:
    """The adaptive sweep against one static choice (scored on ``out``), on ``rows`` (all
    queries when None): accuracy at the static's cost, cost at its accuracy, and the share of
    the gap to the oracle."""
    a_pts = [at.score(c, rows) for at, c in adaptive]
    o_pts = [at.score(c, rows) for at, c in oracle]
    s = out.score(static, rows)
    acc = _envelope_at(a_pts, cost, s[cost])
    top = _envelope_at(o_pts, cost, s[cost])
    gap = (
        None
        if acc is None or top is None or top - s["accuracy"] <= 1e-9
        else (acc - s["accuracy"]) / (top - s["accuracy"])
    )
    needed = _cost_for(a_pts, cost, s["accuracy"])
    return {
        "adaptive_accuracy_at_static_cost": acc,
        "oracle_accuracy_at_static_cost": top,
        "adaptive_cost_at_static_accuracy": needed,
        "cost_ratio_at_static_accuracy": None if needed is None else needed / s[cost],
        "gap_closed": gap,
    }


def choices_by_level(out: Outcomes, pred: Predictions, result: dict[str, Any]) -> dict[str, dict[str, int]]:
    """At the token price whose mean tokens best match the best static strategy's: how often
    each strategy was chosen, per difficulty level."""
    ref = result["static"][result["best_static"]]["tokens"]
    points = result["tokens"]["adaptive"]
    lam = min(points, key=lambda p: abs(p["tokens"] - ref))["lambda"]
    chosen = UtilityPolicy(lambda_tokens=lam).choose(pred)
    table: dict[str, dict[str, int]] = {}
    for level in sorted(set(out.levels.tolist())):
        picks = chosen[out.levels == level]
        table[str(level)] = {s: int((picks == j).sum()) for j, s in enumerate(pred.specs) if (picks == j).any()}
    return table
