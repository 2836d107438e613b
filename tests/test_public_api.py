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


def table_rows() -> list[tuple[str, str]]:
    rows = re.findall(r"^\| `(ttc_agent[\w.]*)` \| (.+) \|$", API, flags=re.M)
    return [(module, name) for module, names in rows for name in re.findall(r"`(\w+)`", names)]


@pytest.mark.parametrize("module, name", table_rows())
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
