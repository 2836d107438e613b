"""Workflow budgets: one token and seconds allowance spread across a whole agent trajectory.

- `WorkflowBudget`: the limits, their scope (run or thread) and what happens when they run out;
- `Ledger` and `BudgetState`: the spend, kept in graph state with its own reducer;
- `EqualSplit` and `Paced`: budget managers that turn what is left into each call's prices and caps;
- `ReservationPool`: concurrent calls reserve their caps, so together they cannot overrun;
- `CallHistory`: learns how many calls a run still makes.
"""

from ttc_agent.budgets.budget import (
    TOKEN_KINDS,
    BudgetError,
    BudgetExhausted,
    BudgetExhaustedError,
    WorkflowBudget,
)
from ttc_agent.budgets.expected import CallHistory
from ttc_agent.budgets.gate import BudgetGate, CallPlan
from ttc_agent.budgets.ledger import (
    LEDGER_KEY,
    RUN_KEY,
    BudgetState,
    Ledger,
    budget_exhausted,
    charge,
    current_run,
    ledger_of,
    merge_ledgers,
)
from ttc_agent.budgets.managers import MANAGERS, Allowance, Balance, BudgetManager, EqualSplit, Paced, make_manager
from ttc_agent.budgets.pool import POOL, Reservation, ReservationPool

__all__ = [
    "LEDGER_KEY",
    "MANAGERS",
    "POOL",
    "RUN_KEY",
    "TOKEN_KINDS",
    "Allowance",
    "Balance",
    "BudgetError",
    "BudgetExhausted",
    "BudgetExhaustedError",
    "BudgetGate",
    "BudgetManager",
    "BudgetState",
    "CallHistory",
    "CallPlan",
    "EqualSplit",
    "Ledger",
    "Paced",
    "Reservation",
    "ReservationPool",
    "WorkflowBudget",
    "budget_exhausted",
    "charge",
    "current_run",
    "ledger_of",
    "merge_ledgers",
    "make_manager",
]
