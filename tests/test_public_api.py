"""The public API: every name docs/api.md lists, and every import line of the docs, resolves."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import ttc_agent

REPO = Path(__file__).resolve().parents[1]
API = (REPO / "docs" / "api.md").read_text()
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def listed_members() -> list[tuple[str, str]]:
    """Every ``module.name`` docs/api.md renders: the ``members`` of each ``::: module`` block."""
    blocks = re.findall(r"^::: (ttc_agent[\w.]*)\n\s+options:\n\s+members: \[([^\]]*)\]", API, flags=re.M)
    return [(module, name.strip()) for module, names in blocks for name in names.split(",")]


def test_the_reference_lists_every_subpackage():
    modules = {module for module, _ in listed_members()}
    assert {"ttc_agent.nodes", "ttc_agent.strategies", "ttc_agent.budgets", "ttc_agent.probes"} <= modules
    assert len(listed_members()) > 150


@pytest.mark.parametrize("module, name", listed_members())
def test_every_listed_name_resolves(module, name):
    assert hasattr(importlib.import_module(module), name), f"{module}.{name} is listed in docs/api.md"


def test_the_package_root_exports_what_it_lists():
    for name in ttc_agent.__all__:
        assert getattr(ttc_agent, name) is not None
    root_block = API.split("```python", 1)[1].split("```", 1)[0]
    code = re.sub(r"#[^\n]*", "", root_block.split("import", 1)[1])
    listed = set(re.findall(r"\b([A-Za-z_]\w*)\b", code))
    assert listed <= set(ttc_agent.__all__), f"listed in docs but not exported: {listed - set(ttc_agent.__all__)}"


def doc_imports() -> list[str]:
    lines = []
    for path in DOCS:
        text = path.read_text()
        for block in re.findall(
            r"^from ttc_agent[\w.]* import \([^)]*\)|^from ttc_agent[\w.]* import [^\n(]+", text, re.M
        ):
            lines.append(re.sub(r"#[^\n]*", "", block))
    return sorted(set(lines))


@pytest.mark.parametrize("statement", doc_imports())
def test_every_import_in_the_docs_works(statement):
    exec(statement, {})


def test_plumbing_is_not_exported_from_the_budgets_root():
    import ttc_agent.budgets as budgets

    for internal in ("charge", "ledger_of", "POOL", "BudgetGate", "make_manager", "current_run"):
        assert internal not in budgets.__all__
