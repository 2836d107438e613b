"""Shared plotting helpers (matplotlib, headless)."""

from __future__ import annotations

from typing import Any


def save_figure(fig: Any, stem: str) -> list[str]:
    """Save ``fig`` as ``stem.png`` and ``stem.svg``, close it, and return the two paths."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    paths = []
    for ext in ("png", "svg"):
        fig.savefig(f"{stem}.{ext}", dpi=110)
        paths.append(f"{stem}.{ext}")
    plt.close(fig)
    return paths
