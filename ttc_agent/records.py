"""The JSON-ready records ttc-agent writes for every call, defined once for writers and readers.

A `DecisionRecord` is what one call predicted, chose and spent; traces (`JsonlTraceSink`), the
custom stream, LangSmith metadata, `ttc-agent report` and the demo all read this shape. Its
``budget`` part is a `BudgetRecord` when the call ran under a workflow budget.
"""

from __future__ import annotations

from typing import Any, TypedDict


class CandidateRecord(TypedDict):
    """One strategy of the menu as the policy saw it for this call."""

    strategy: str
    accuracy: float
    tokens: float
    tokens_q90: float
    seconds: float
    utility: float
    fits: bool


class CostRecord(TypedDict):
    """A call's measured cost (`ttc_agent.strategies.Cost.as_dict`)."""

    prompt_tokens: int
    completion_tokens: int
    verifier_tokens: int
    total_tokens: int
    rounds: int
    seconds: float
    verifier_seconds: float


class LimitsRecord(TypedDict):
    """The prices and hard caps a call ran under (`ttc_agent.policy.CallLimits`)."""

    lambda_tokens: float
    lambda_seconds: float
    max_call_tokens: float | None
    max_call_seconds: float | None
    quantile: float


class AmountRecord(TypedDict):
    """Tokens and seconds (``None`` where not budgeted)."""

    tokens: float | None
    seconds: float | None


class BudgetRecord(TypedDict):
    """What a budgeted call had, reserved, was charged and left (`BudgetGate.settle`)."""

    manager: str
    scope: str
    max_tokens: int | None
    max_seconds: float | None
    before: dict[str, float | int | None]
    after: dict[str, float | None]
    reserve: AmountRecord
    reservation: AmountRecord
    charged: AmountRecord
    granted: AmountRecord


class ExhaustedRecord(TypedDict):
    """Which limit a workflow ran out of (`BudgetExhausted.as_dict`)."""

    limit: str
    needed: float
    left: float
    node: str
    message: str


class FeaturesRecord(TypedDict):
    """A short summary of the query's feature vector."""

    sha256: str
    dim: int
    norm: float


class CapRecord(TypedDict):
    """The per-sample token cap a call's samples ran with (the caller's, else the menu's) and
    the one its chosen strategy was traced at; ``beyond_traced`` when the predictions were
    extrapolated to a higher cap."""

    max_tokens: int
    traced_max_tokens: int
    beyond_traced: bool


class NoveltyRecord(TypedDict):
    """How far a prompt's features lie from the probe bundle's training prompts
    (`ttc_agent.probes.novelty`), and whether beyond the calibrated threshold: then the
    decision did not trust the accuracy probes (each strategy's training average instead) and
    a two-stage strategy decided its second stage by its default agreement rule."""

    score: float
    threshold: float
    novel: bool


class DecisionRecord(TypedDict, total=False):
    """One call: its predictions for every strategy, the limits, the choice and the actual cost.

    ``choice`` is ``None`` and ``exhausted`` is set when the budget could not afford any strategy.
    """

    time: float
    node: str
    features: FeaturesRecord
    prompt_tokens: int
    choice: str | None
    feasible: bool
    limits: LimitsRecord
    candidates: list[CandidateRecord]
    answer: str | None
    actual: CostRecord
    finish_reason: str
    cut_by_length: int
    cap: CapRecord
    stages: dict[str, Any]
    ood: NoveltyRecord
    budget: BudgetRecord
    exhausted: ExhaustedRecord
    messages: list[dict[str, str]]
