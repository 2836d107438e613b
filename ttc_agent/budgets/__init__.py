"""Workflow budgets: `WorkflowBudget`, the spend ledger and budget managers (issue #8)."""
