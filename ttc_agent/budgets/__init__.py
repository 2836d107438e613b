"""Workflow budgets: one token and seconds allowance spread across a whole agent trajectory.

The public surface (everything else in the submodules is internal plumbing):

- `WorkflowBudget`: the limits, their scope (run or thread) and what happens when they run out;
- `BudgetState` and `Ledger`: the spend, kept in graph state with its own reducer;
  `budget_exhausted(state)` routes a graph once the budget is spent;
- `EqualSplit` and `Paced`: budget managers (or any `BudgetManager`) that turn what is left
  (`Balance`) into each call's prices and caps (`Allowance`);
- `ReservationPool`: where concurrent calls reserve their caps, so together they cannot overrun;
  `SQLiteStore` and `PostgresStore` do the same for processes on one machine or on several
  (any `BudgetStore` is a node's or the server's ``pool``), and keep the server's sessions (`Session`);
- `CallHistory`: learns how many calls a run still makes;
- `BudgetExhausted`, `BudgetExhaustedError`, `BudgetError` and `Grant`: what running out looks like.
"""

from ttc_agent.budgets.budget import (
    TOKEN_KINDS,
    BudgetError,
    BudgetExhausted,
    BudgetExhaustedError,
    Grant,
    WorkflowBudget,
)
from ttc_agent.budgets.expected import CallHistory
from ttc_agent.budgets.ledger import BudgetState, Ledger, budget_exhausted
from ttc_agent.budgets.managers import Allowance, Balance, BudgetManager, EqualSplit, Paced
from ttc_agent.budgets.pool import ReservationPool, Session, Spend
from ttc_agent.budgets.store import BudgetStore, BudgetStoreError, PostgresStore, SQLiteStore

__all__ = [
    "TOKEN_KINDS",
    "Allowance",
    "Balance",
    "BudgetError",
    "BudgetExhausted",
    "BudgetExhaustedError",
    "BudgetManager",
    "BudgetState",
    "BudgetStore",
    "BudgetStoreError",
    "CallHistory",
    "EqualSplit",
    "Grant",
    "Ledger",
    "Paced",
    "PostgresStore",
    "ReservationPool",
    "SQLiteStore",
    "Session",
    "Spend",
    "WorkflowBudget",
    "budget_exhausted",
]
