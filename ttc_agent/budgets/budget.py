"""`WorkflowBudget`: one token and seconds allowance for a whole agent trajectory."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from ttc_agent.errors import InvalidRequestError, TTCError
from ttc_agent.estimators.predictors import TOKENS_QUANTILE
from ttc_agent.policy import check_quantile
from ttc_agent.records import ExhaustedRecord
from ttc_agent.validation import POSITIVE, POSITIVE_INT, Interval, check_param

if TYPE_CHECKING:
    from ttc_agent.strategies import Cost

#: The token kinds a budget can count; all three by default.
TOKEN_KINDS = ("prompt", "completion", "verifier")


class BudgetError(InvalidRequestError):
    """A budget, manager or ledger setting has a bad value (raised before any generation)."""


class Grant(NamedTuple):
    """Tokens and seconds a person granted beyond a workflow's budget (after it ran out)."""

    tokens: int = 0  #: extra tokens
    seconds: float = 0.0  #: extra seconds

    def __add__(self, other: object) -> Grant:
        if not isinstance(other, Grant):
            return NotImplemented
        return Grant(self.tokens + other.tokens, self.seconds + other.seconds)


#: The limits a budget can run out of.
Limit = Literal["tokens", "seconds"]


@dataclass(frozen=True)
class BudgetExhausted:
    """The typed outcome of a call that the budget cannot afford: which limit ran out.

    ``limit`` is ``"tokens"`` or ``"seconds"``; ``needed`` is the cheapest strategy's
    predicted cost (its q90 tokens, or its seconds), ``left`` what the workflow had left.
    """

    limit: Limit
    needed: float
    left: float
    node: str = ""

    def as_dict(self) -> ExhaustedRecord:
        """The fields and the message, JSON-ready (for records and interrupts)."""
        return ExhaustedRecord(
            limit=self.limit, needed=self.needed, left=self.left, node=self.node, message=self.message
        )

    @property
    def message(self) -> str:
        unit = "tokens" if self.limit == "tokens" else "seconds"
        return (
            f"Stopped: the workflow's {unit} budget is spent ({self.left:.4g} {unit} left, the cheapest "
            f"strategy needs about {self.needed:.4g})."
        )


class BudgetExhaustedError(TTCError):
    """Raised by a call under ``on_exhausted="error"`` (and by `TTCNode.answer`) when the
    budget cannot afford even the cheapest strategy; ``.exhausted`` says which limit."""

    def __init__(self, exhausted: BudgetExhausted) -> None:
        super().__init__(exhausted.message)
        self.exhausted = exhausted


def _check_limit(name: str, value: Any, integer: bool) -> Any:
    if value is None:
        return None
    check_param(name, value, Interval(int, 0, None, "right") if integer else POSITIVE, error=BudgetError)
    return value if integer else float(value)


@dataclass(frozen=True)
class WorkflowBudget:
    """What a whole workflow may spend, and what happens when it runs out.

    Args:
        max_tokens: tokens for the whole workflow; which kinds count is ``count`` (prompt,
            completion and verifier tokens by default).
        max_seconds: seconds of LLM calls for the whole workflow (the calls' wall-clock
            seconds, summed; each call's deadline is what is left).
        scope: ``"run"`` resets on each ``invoke`` of a thread; ``"thread"`` accumulates
            across invocations of the same thread (as ``ModelCallLimitMiddleware`` does).
        on_exhausted: ``"end"`` finishes with a message naming the limit, ``"error"`` raises
            `BudgetExhaustedError`, ``"ask"`` pauses with LangGraph's ``interrupt()`` so a person
            can grant more (resume with ``{"tokens": N, "seconds": S}``) or stop (``False``).
        expected_calls: how many LLM calls the workflow makes (``None``: learned per node from
            earlier runs, see `CallHistory`).
        shared_by: a name; every thread whose budget carries it draws from one allowance in
            the engine's budget store (this process by default; every process sharing a
            `SQLiteStore` or `PostgresStore`).
        count: the token kinds that count against ``max_tokens``.
        quantile: a strategy is feasible only if this quantile of its predicted tokens and
            seconds fits what is left (and the reserve for later calls is counted at it too);
            in [0.5, 1), 0.9 by default. Lower spends more of the budget and cuts more calls off
            at their cap; the ledger and the hard caps hold either way.

    Example:
        >>> WorkflowBudget(max_tokens=2000, max_seconds=60, expected_calls=4)
    """

    max_tokens: int | None = None
    max_seconds: float | None = None
    scope: Literal["run", "thread"] = "run"
    on_exhausted: Literal["end", "error", "ask"] = "end"
    expected_calls: int | None = None
    shared_by: str | None = None
    count: tuple[str, ...] = field(default=TOKEN_KINDS)
    quantile: float = TOKENS_QUANTILE

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_tokens", _check_limit("max_tokens", self.max_tokens, integer=True))
        object.__setattr__(self, "max_seconds", _check_limit("max_seconds", self.max_seconds, integer=False))
        if self.max_tokens is None and self.max_seconds is None:
            raise BudgetError("a WorkflowBudget needs max_tokens, max_seconds or both")
        if self.scope not in ("run", "thread"):
            raise BudgetError(f"scope must be 'run' or 'thread', got {self.scope!r}")
        if self.on_exhausted not in ("end", "error", "ask"):
            raise BudgetError(f"on_exhausted must be 'end', 'error' or 'ask', got {self.on_exhausted!r}")
        check_param("expected_calls", self.expected_calls, POSITIVE_INT, allow_none=True, error=BudgetError)
        if self.shared_by is not None and (not isinstance(self.shared_by, str) or not self.shared_by):
            raise BudgetError(f"shared_by must be a non-empty string or None, got {self.shared_by!r}")
        count = tuple(self.count) if not isinstance(self.count, str) else (self.count,)
        bad = [k for k in count if k not in TOKEN_KINDS]
        if bad or not count:
            raise BudgetError(f"count must name some of {list(TOKEN_KINDS)}, got {self.count!r}")
        object.__setattr__(self, "count", count)
        object.__setattr__(self, "quantile", check_quantile(self.quantile, BudgetError))

    @classmethod
    def coerce(cls, value: Any) -> WorkflowBudget | None:
        """A budget from a `WorkflowBudget`, a mapping of its fields, or ``None``."""
        if value is None or isinstance(value, WorkflowBudget):
            return value
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(cls.__dataclass_fields__))
            if unknown:
                raise BudgetError(
                    f"unknown budget field(s) {unknown}; expected some of {list(cls.__dataclass_fields__)}"
                )
            return cls(**value)
        raise BudgetError(f"a budget must be a WorkflowBudget or a mapping, got {value!r}")

    def tokens_of(self, cost: Cost | Mapping[str, float]) -> int:
        """The tokens of a `Cost` (or cost dict) that count against this budget."""
        if isinstance(cost, Mapping):
            return int(sum(cost[f"{k}_tokens"] for k in self.count))
        return int(sum(getattr(cost, f"{k}_tokens") for k in self.count))

    @property
    def digest(self) -> str:
        """Identifies the limits a ledger was kept under (not the exhaustion behaviour)."""
        key = {k: v for k, v in asdict(self).items() if k in ("max_tokens", "max_seconds", "scope", "count")}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
