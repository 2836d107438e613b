"""Shared plotting helpers (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ttc_agent.extras import needs_extra

if TYPE_CHECKING:
    from ttc_agent.probes.predictions import Predictions
    from ttc_agent.probes.table import TraceTable


def save_figure(fig: Any, stem: str) -> list[str]:
    """Save ``fig`` as ``stem.png`` and ``stem.svg``, close it, and return the two paths. The
    files carry no date and the SVG's element ids a fixed salt, so the same data redraws the
    same bytes."""
    with needs_extra("plots", "saving figures"):
        import matplotlib.pyplot as plt

    fig.tight_layout()
    paths = []
    for ext, metadata in (("png", {"Software": None}), ("svg", {"Date": None, "Creator": None})):
        with plt.rc_context({"svg.hashsalt": "ttc-agent"}):
            fig.savefig(f"{stem}.{ext}", dpi=110, metadata=metadata)
        paths.append(f"{stem}.{ext}")
    plt.close(fig)
    return paths


def plain_log_axis(ax: Any, axis: str = "x") -> None:
    """A log axis labelled with plain numbers at its major ticks only (matplotlib otherwise
    labels minor ticks too, and their ``4x10^2``-style labels run into each other)."""
    with needs_extra("plots", "log axes"):
        from matplotlib.ticker import FuncFormatter, NullFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def wilson_interval(successes: float, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (``successes`` may be fractional: a mean over
    repeats times the questions), the interval to draw around an accuracy or a success rate."""
    from scipy.stats import norm

    if trials <= 0:
        return (0.0, 1.0)
    z = float(norm.ppf(0.5 + confidence / 2))
    p = min(max(successes / trials, 0.0), 1.0)
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * ((p * (1 - p) / trials + z * z / (4 * trials * trials)) ** 0.5) / (1 + z * z / trials)
    return (max(centre - half, 0.0), min(centre + half, 1.0))


def plot_probe_fit(title: str, labels: Sequence[str], table: TraceTable, preds: Predictions, stem: str) -> list[str]:
    """How a bundle's probes fit held-out questions: the accuracy probes' reliability curves
    (predicted P(correct) against the observed frequency, the runs each point stands on beside
    it) and predicted against measured seconds, one colour per strategy (``labels``, in the
    order of ``preds.specs``). Writes ``stem``.png and .svg; returns the paths."""
    with needs_extra("plots", "plotting a probe fit"):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

    from ttc_agent.probes.metrics import reliability

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.2))
    for j, (spec, label) in enumerate(zip(preds.specs, labels, strict=True)):
        idx, y = table.run_rows(spec)
        bins = reliability(y, preds.accuracy[idx, j])
        (line,) = a.plot([x for x, _, _ in bins], [f for _, f, _ in bins], marker="o", label=label)
        for x, f, count in bins:
            a.annotate(str(count), (x, f), fontsize=6, color=line.get_color(), xytext=(3, -8),
                       textcoords="offset points")  # fmt: skip
        b.scatter(table.mean(spec, "seconds"), preds.seconds[:, j], s=12, label=label)
    a.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    a.set(xlabel="predicted P(correct)", ylabel="observed frequency (runs per bin beside each point)",
          title=f"{title}: reliability (held out)")  # fmt: skip
    top = max(b.get_xlim()[1], b.get_ylim()[1])
    b.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=1)
    b.set(xlabel="measured seconds", ylabel="predicted seconds", title=f"{title}: latency (held out)")
    a.legend(fontsize=7)
    return save_figure(fig, stem)
