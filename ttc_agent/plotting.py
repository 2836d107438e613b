"""Shared plotting helpers (matplotlib, headless)."""

from __future__ import annotations

from typing import Any

from ttc_agent.extras import needs_extra


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
