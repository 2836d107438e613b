"""What a freshly fitted bundle's held-out metrics say: which strategies' probes are usable, and
how many more questions would resolve the ones that are not yet.

The accuracy probe's AUROC gets a 95% interval (Hanley and McNeil's standard error, from the
held-out runs' positives and negatives); a probe is *informative* when the interval's lower end
is above 0.5. An interval shrinks as one over the square root of the runs, so the questions
needed to bring its half-width to ``target_half_width`` follow from the current one. With fewer
than `MIN_EACH_OUTCOME` held-out runs of either outcome there is no verdict: the standard error
collapses at an AUROC of 0 or 1 (one right run ranked first among four wrong ones would read as
"informative, [1.00, 1.00]"), so the verdict says how many more questions would hold enough.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The AUROC half-width worth collecting for: enough to tell 0.6 from 0.5.
TARGET_HALF_WIDTH = 0.05
#: Fewer held-out runs than this of either outcome (right, wrong) tell nothing about a probe.
MIN_EACH_OUTCOME = 5
#: Token predictions within this mean absolute percentage error are usable for budgets.
USABLE_TOKENS_MAPE = 0.3


@dataclass(frozen=True)
class ProbeVerdict:
    """One strategy's probes, judged on held-out questions."""

    strategy: str
    auroc: float | None
    auroc_interval: tuple[float, float] | None
    accuracy: str  # "informative", "not yet shown informative", "too few ...", "nothing to learn (one outcome)"
    tokens: str  # "usable" or "rough"
    questions_needed: int | None  # total questions for a TARGET_HALF_WIDTH interval, when short of it

    def line(self) -> str:
        """The verdict as one sentence."""
        auc = (
            ""
            if self.auroc is None or self.auroc_interval is None
            else (f" (AUROC {self.auroc:.2f} [{self.auroc_interval[0]:.2f}, {self.auroc_interval[1]:.2f}])")
        )
        more = f"; about {self.questions_needed} questions would resolve it" if self.questions_needed else ""
        return f"{self.strategy}: accuracy probe {self.accuracy}{auc}{more}; token predictions {self.tokens}"


def auroc_interval(auroc: float, positives: int, negatives: int) -> tuple[float, float]:
    """The 95% interval of an AUROC (Hanley and McNeil, 1982)."""
    a = min(max(auroc, 1e-6), 1 - 1e-6)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (positives - 1) * (q1 - a * a) + (negatives - 1) * (q2 - a * a)) / (positives * negatives)
    half = 1.96 * math.sqrt(max(var, 0.0))
    return max(auroc - half, 0.0), min(auroc + half, 1.0)


def verdicts(
    metrics: Mapping[str, Mapping[str, Any]], total_questions: int, target_half_width: float = TARGET_HALF_WIDTH
) -> list[ProbeVerdict]:
    """A verdict per strategy from `ttc_agent.probes.evaluate.evaluate`'s held-out metrics;
    ``total_questions`` is how many questions the traces hold (train and held out)."""
    out = []
    for spec, m in metrics.items():
        runs = int(m["runs"])
        positives = round(float(m["accuracy"]) * runs)
        negatives = runs - positives
        tokens = "usable" if m["tokens_mape"] <= USABLE_TOKENS_MAPE else f"rough (MAPE {m['tokens_mape']:.0%})"
        if m["auroc"] is None or not positives or not negatives:
            out.append(ProbeVerdict(spec, None, None, "nothing to learn (one outcome)", tokens, None))
            continue
        fewer = min(positives, negatives)
        if fewer < MIN_EACH_OUTCOME:
            label = f"too few held-out runs to tell ({positives} right, {negatives} wrong)"
            enough = math.ceil(total_questions * MIN_EACH_OUTCOME / fewer)
            out.append(ProbeVerdict(spec, float(m["auroc"]), None, label, tokens, enough))
            continue
        low, high = auroc_interval(float(m["auroc"]), positives, negatives)
        informative = low > 0.5
        half = (high - low) / 2
        needed: int | None = None
        if not informative and half > target_half_width:
            needed = math.ceil(total_questions * (half / target_half_width) ** 2)
        label = "informative" if informative else "not yet shown informative"
        out.append(ProbeVerdict(spec, float(m["auroc"]), (low, high), label, tokens, needed))
    return out
