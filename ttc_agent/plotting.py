"""Every figure ttc-agent draws, and their shared helpers (matplotlib, headless; the [plots]
extra): replays of policies, budget simulations, a decision log's cumulative cost, a probe fit."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttc_agent.extras import needs_extra

if TYPE_CHECKING:
    from ttc_agent.probes.predictions import Predictions
    from ttc_agent.probes.table import TraceTable


def pyplot(feature: str) -> Any:
    """matplotlib's pyplot on the headless Agg backend (`MissingExtraError` naming [plots] and
    ``feature`` without it)."""
    with needs_extra("plots", feature):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    return plt


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
    plt = pyplot("plotting a probe fit")

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


def short_label(spec: str) -> str:
    """A compact name for plots: ``bo8 majority``, ``beam 2x2``, ``adaptive_sc 16``,
    ``two_stage 4+12``, ``greedy``; a temperature the spec names is kept (``bo8 majority T0.5``)."""
    t = re.search(r"temperature=([\d.]+)", spec)
    suffix = f" T{t.group(1)}" if t else ""
    for pattern, label in (
        (r"best_of_n\((\d+), select=(\w+)", "bo{0} {1}"),
        (r"beam\(width=(\d+), expand=(\d+)", "beam {0}x{1}"),
        (r"adaptive_sc\(max_n=(\d+)", "adaptive_sc {0}"),
        (r"deepconf\(n=(\d+)", "deepconf {0}"),
        (r"two_stage\(k=(\d+), more=(\d+)", "two_stage {0}+{1}"),
    ):
        if m := re.match(pattern, spec):
            return label.format(*m.groups()) + suffix
    return spec


def burn_down(records: list[dict[str, Any]], unit: str) -> tuple[list[float], list[float]] | None:
    """Per budgeted step, what was left after it and what the manager's linear plan had left
    (the total shared evenly over the calls expected), for ``unit`` "tokens" or "seconds"."""
    left, plan = [], []
    for r in records:
        b = r.get("budget")
        if not b or b["before"].get(f"{unit}_total") is None:
            continue
        before = b["before"]
        calls = before["calls_done"] + before["calls_left"]
        left.append(b["after"][f"{unit}_left"])
        plan.append(before[f"{unit}_total"] * (1 - (before["calls_done"] + 1) / calls))
    return (left, plan) if left else None


def plot_cumulative(records: list[dict[str, Any]], path: str | Path) -> Path:
    """Cumulative tokens and seconds per step, each step labelled with its strategy (PNG); with
    a workflow budget, a second row draws the burn-down of what is left against the plan."""
    plt = pyplot("plotting a report")

    records = [r for r in records if r.get("choice") is not None]  # a budget-exhausted stop spends nothing

    steps = range(1, len(records) + 1)
    tokens, seconds, t, s = [], [], 0, 0.0
    for r in records:
        t += r["actual"]["total_tokens"]
        s += r["actual"]["seconds"]
        tokens.append(t)
        seconds.append(s)
    burns = {u: burn_down(records, u) for u in ("tokens", "seconds")}
    rows = 2 if any(burns.values()) else 1
    fig, axes = plt.subplots(rows, 2, figsize=(10, 3.8 * rows), squeeze=False)
    a, b = axes[0]
    if rows == 2:
        for ax, unit in zip(axes[1], ("tokens", "seconds"), strict=True):
            burn = burns[unit]
            if burn is None:
                ax.set_axis_off()
                continue
            left, plan = burn
            xs = range(1, len(left) + 1)
            ax.step(xs, left, where="post", marker="o", label=f"{unit} left")
            ax.plot(xs, plan, linestyle="--", color="grey", label="plan (even split)")
            ax.axhline(0, color="red", linewidth=0.8)
            ax.set(xlabel="budgeted step", ylabel=f"{unit} left", title=f"budget burn-down: {unit}")
            ax.set_xticks(list(xs))
            ax.legend(fontsize=7)
    for ax, ys, label in ((a, tokens, "cumulative tokens"), (b, seconds, "cumulative seconds")):
        ax.step(steps, ys, where="post", marker="o")
        for x, y, r in zip(steps, ys, records, strict=True):
            ax.annotate(short_label(r["choice"]), (x, y), fontsize=7, xytext=(2, 4), textcoords="offset points")
        ax.set(xlabel="step", ylabel=label, title=label)
        ax.set_xticks(list(steps))
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_replay(result: dict[str, Any], path_stem: str, task: str = "") -> list[str]:
    """Accuracy against mean tokens and against mean seconds: statics as points with 95%
    Wilson intervals (named in the legend, so long names never collide), the adaptive policy as
    a curve, the oracle as a ceiling; ``task`` names the questions in the titles. Writes PNG and
    SVG; returns the paths."""
    plt = pyplot("plotting replays")

    fig, axes = plt.subplots(1, 2, figsize=(13.5, 4.3))
    for ax, cost in zip(axes, ("tokens", "seconds"), strict=True):
        data = result[cost]
        for name, lab in ((data["adaptive"], "adaptive (utility policy)"), (data["oracle"], "oracle (hindsight)")):
            pts = sorted(name, key=lambda p: p[cost])
            ax.plot(
                [p[cost] for p in pts],
                [p["accuracy"] for p in pts],
                marker=".",
                label=lab,
                linestyle="-" if "adaptive" in lab else "--",
            )
        n = int(result["queries"])
        for i, (spec, s) in enumerate(result["static"].items()):
            lo, hi = wilson_interval(s["accuracy"] * n, n)
            ax.errorbar(s[cost], s["accuracy"], yerr=[[s["accuracy"] - lo], [hi - s["accuracy"]]], fmt="s",
                        capsize=3, color=f"C{(i + 2) % 10}", label=short_label(spec), zorder=3)  # fmt: skip
        ax.set_xscale("log")
        plain_log_axis(ax)
        ax.set(
            xlabel=f"mean {cost} per query (log)",
            ylabel="accuracy (95% Wilson interval)",
            title=f"{task + ': ' if task else ''}accuracy vs {cost} ({n} held-out queries)",
        )
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # beside the data, never on it
    return save_figure(fig, path_stem)


def plot_simulation(
    rows: Sequence[dict[str, Any]], path: str, workflows: int | None = None, title: str = ""
) -> list[str]:
    """Success rate against budget, one line per allocation, with 95% Wilson bands over the
    ``workflows`` simulated at each budget (PNG and SVG at ``path``)."""
    plt = pyplot("plotting simulations")

    key = "max_tokens" if rows[0].get("max_tokens") is not None else "max_seconds"
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name in dict.fromkeys(r["allocation"] for r in rows):
        pts = sorted((r[key], r["success"]) for r in rows if r["allocation"] == name)
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        if name == "oracle":
            (line,) = ax.plot(xs, ys, label=name, linestyle="--", color="black")
        else:
            (line,) = ax.plot(xs, ys, label=name, marker="o")
        if workflows:
            bands = [wilson_interval(y * workflows, workflows) for y in ys]
            ax.fill_between(xs, [b[0] for b in bands], [b[1] for b in bands], color=line.get_color(), alpha=0.15)
    ax.set(
        xlabel=f"workflow budget ({key.removeprefix('max_')})",
        ylabel="workflow success rate" + (" (95% Wilson band)" if workflows else ""),
        title=title or "workflow success against budget",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
