"""The `Ledger`: a workflow's spend, kept in LangGraph state under its own key and reducer.

Every budgeted call writes one *increment* (a `Ledger` holding just that call's spend) to
``state["ttc_ledger"]``; the reducer `merge_ledgers` adds it to the running ledger. Because
increments add, parallel branches (fan-out with ``Send``) merge their spends correctly, and
because the ledger is ordinary state, any checkpointer persists it and a resumed thread
continues from the right balance. The ledger holds thread totals (``tokens``, ``seconds``,
``calls``) and the current run's (``run_*``), which restart when a call of a new run arrives.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

from langgraph.channels.untracked_value import UntrackedValue
from typing_extensions import TypedDict

from ttc_agent.budgets.budget import BudgetError
from ttc_agent.deprecation import renamed_fields
from ttc_agent.validation import NON_NEGATIVE, NON_NEGATIVE_INT, check_param

#: The state key the ledger lives under.
LEDGER_KEY = "ttc_ledger"


#: The pacer's stored prices' old names (deprecated; still read from old checkpoints).
PACER_RENAMES = {"lambda_tokens": "pacer_lambda_tokens", "lambda_seconds": "pacer_lambda_seconds"}


@renamed_fields(PACER_RENAMES)
@dataclass(frozen=True)
class Ledger:
    """Spend so far (or one call's increment).

    Attributes:
        budget: digest of the `WorkflowBudget` the ledger is kept under.
        tokens, seconds, calls: the thread's totals.
        run, run_tokens, run_seconds, run_calls: the current run's id and totals.
        run_granted_tokens, run_granted_seconds, granted_tokens, granted_seconds: extra
            allowance a person granted after ``on_exhausted="ask"`` (for the run, the thread).
        node_calls: calls per node in the current run (for learning calls still expected).
        pacer_lambda_tokens, pacer_lambda_seconds: the `Paced` manager's prices, carried between
            calls (formerly ``lambda_tokens``/``lambda_seconds``, deprecated names: a user's
            ``lambda_*`` setting is another thing).
        exhausted: the limit that stopped the workflow (``"tokens"`` or ``"seconds"``), if any.
    """

    budget: str = ""
    tokens: int = 0
    seconds: float = 0.0
    calls: int = 0
    run: str = ""
    run_tokens: int = 0
    run_seconds: float = 0.0
    run_calls: int = 0
    run_granted_tokens: int = 0
    run_granted_seconds: float = 0.0
    granted_tokens: int = 0
    granted_seconds: float = 0.0
    node_calls: dict[str, int] = field(default_factory=dict)
    pacer_lambda_tokens: float | None = None
    pacer_lambda_seconds: float | None = None
    exhausted: str | None = None

    def spent(self, scope: str, run: str) -> tuple[int, float, int]:
        """Tokens, seconds and calls spent in ``scope`` (the current ``run`` for run scope)."""
        if scope == "thread":
            return self.tokens, self.seconds, self.calls
        if run and self.run == run:
            return self.run_tokens, self.run_seconds, self.run_calls
        return 0, 0.0, 0

    def granted(self, scope: str, run: str) -> tuple[int, float]:
        """Extra tokens and seconds granted in ``scope``."""
        if scope == "thread":
            return self.granted_tokens, self.granted_seconds
        if run and self.run == run:
            return self.run_granted_tokens, self.run_granted_seconds
        return 0, 0.0

    def calls_of_run(self, run: str) -> dict[str, int]:
        """Calls per node in ``run`` so far."""
        return dict(self.node_calls) if run and self.run == run else {}


def charge(
    budget: str,
    run: str,
    node: str,
    *,
    tokens: int = 0,
    seconds: float = 0.0,
    calls: int = 1,
    granted_tokens: int = 0,
    granted_seconds: float = 0.0,
    lambdas: tuple[float | None, float | None] = (None, None),
    exhausted: str | None = None,
) -> Ledger:
    """One call's increment, ready to write to ``state["ttc_ledger"]``.

    Spends and grants are finite and never negative (a `BudgetError` names a bad one), so the
    ledger only grows and what is left is never overstated.
    """
    for name, value in (("tokens", tokens), ("calls", calls), ("granted_tokens", granted_tokens)):
        check_param(name, value, NON_NEGATIVE_INT, owner="a ledger increment", error=BudgetError)
    for name, fvalue in (("seconds", seconds), ("granted_seconds", granted_seconds)):
        check_param(name, fvalue, NON_NEGATIVE, owner="a ledger increment", error=BudgetError)
    return Ledger(
        budget=budget,
        tokens=tokens,
        seconds=seconds,
        calls=calls,
        run=run,
        run_tokens=tokens,
        run_seconds=seconds,
        run_calls=calls,
        run_granted_tokens=granted_tokens,
        run_granted_seconds=granted_seconds,
        granted_tokens=granted_tokens,
        granted_seconds=granted_seconds,
        node_calls={node: calls} if calls else {},
        pacer_lambda_tokens=lambdas[0],
        pacer_lambda_seconds=lambdas[1],
        exhausted=exhausted,
    )


def merge_ledgers(current: Ledger | None, update: Ledger | None) -> Ledger:
    """The reducer: add an increment to the ledger (thread totals always; run totals restart
    when the increment belongs to a new run). Refuses a ledger kept under another budget."""
    if update is None:
        return current or Ledger()
    if current is None:
        return update
    if not isinstance(update, Ledger) or not isinstance(current, Ledger):
        raise BudgetError(f"{LEDGER_KEY} takes Ledger increments, got {type(update).__name__}")
    same_run = not update.run or update.run == current.run
    if same_run and current.budget and update.budget and current.budget != update.budget:
        raise BudgetError(
            f"this thread's ledger was kept under budget {current.budget}, the call runs under {update.budget}"
        )
    base = current if same_run else replace(current, **_fresh_run(update.run))
    nodes = dict(base.node_calls)
    for k, v in update.node_calls.items():
        nodes[k] = nodes.get(k, 0) + v
    return Ledger(
        budget=update.budget or base.budget,
        tokens=base.tokens + update.tokens,
        seconds=base.seconds + update.seconds,
        calls=base.calls + update.calls,
        run=base.run or update.run,
        run_tokens=base.run_tokens + update.run_tokens,
        run_seconds=base.run_seconds + update.run_seconds,
        run_calls=base.run_calls + update.run_calls,
        run_granted_tokens=base.run_granted_tokens + update.run_granted_tokens,
        run_granted_seconds=base.run_granted_seconds + update.run_granted_seconds,
        granted_tokens=base.granted_tokens + update.granted_tokens,
        granted_seconds=base.granted_seconds + update.granted_seconds,
        node_calls=nodes,
        pacer_lambda_tokens=_latest(update.pacer_lambda_tokens, base.pacer_lambda_tokens),
        pacer_lambda_seconds=_latest(update.pacer_lambda_seconds, base.pacer_lambda_seconds),
        exhausted=update.exhausted or (base.exhausted if same_run else None),
    )


def _latest(update: float | None, base: float | None) -> float | None:
    return update if update is not None else base


def _fresh_run(run: str) -> dict[str, Any]:
    return {
        "run": run,
        "run_tokens": 0,
        "run_seconds": 0.0,
        "run_calls": 0,
        "run_granted_tokens": 0,
        "run_granted_seconds": 0.0,
        "node_calls": {},
        "pacer_lambda_tokens": None,
        "pacer_lambda_seconds": None,
        "exhausted": None,
    }


class BudgetState(TypedDict, total=False):
    """Mix into a graph's state schema to keep a ledger (``class State(MessagesState, BudgetState)``)."""

    ttc_ledger: Annotated[Ledger, merge_ledgers]
    ttc_run: Annotated[str, UntrackedValue(str, guard=False)]


def ledger_of(state: Any) -> Ledger | None:
    """The ledger in a graph state (a mapping or an object), if any."""
    value = state.get(LEDGER_KEY) if isinstance(state, dict) else getattr(state, LEDGER_KEY, None)
    if value is not None and not isinstance(value, Ledger):
        raise BudgetError(f"state[{LEDGER_KEY!r}] must be a Ledger, got {type(value).__name__}")
    return value


def budget_exhausted(state: Any) -> bool:
    """For conditional edges: whether the workflow's budget stopped a call."""
    ledger = ledger_of(state)
    return ledger is not None and ledger.exhausted is not None


#: The state key of the current run's id (never checkpointed: it is gone when a new run starts).
RUN_KEY = "ttc_run"


def current_run(state: Any, ledger: Ledger | None, config: Any) -> str:
    """The id of the run a call belongs to (for run-scoped budgets).

    Within a run it is the id the run's first budgeted call wrote to ``state["ttc_run"]``, an
    untracked channel that every new invocation starts without. The first budgeted call of a
    run takes ``config["run_id"]`` if the caller set one, the ledger's run when LangGraph is
    resuming an interrupted run, and otherwise derives the id from the thread and the checkpoint
    its step started from, which parallel branches of one step share and a new invocation does
    not. Outside a graph run every call is a run of its own.
    """
    marker = state.get(RUN_KEY) if isinstance(state, dict) else getattr(state, RUN_KEY, None)
    if marker:
        return str(marker)
    config = config or {}
    configurable = config.get("configurable") or {}
    if configurable.get("__pregel_resuming") and ledger is not None and ledger.run:
        return ledger.run
    if config.get("run_id"):
        return str(config["run_id"])
    step = _step_checkpoint()
    if step is None:
        return uuid.uuid4().hex[:16]
    return hashlib.sha256(f"{configurable.get('thread_id', '')}/{step}".encode()).hexdigest()[:16]


def _step_checkpoint() -> str | None:
    """The id of the checkpoint the current LangGraph step started from (None outside a graph)."""
    from langgraph.runtime import get_runtime

    try:
        info = getattr(get_runtime(), "execution_info", None)
    except RuntimeError:
        return None
    return getattr(info, "checkpoint_id", None) or None
