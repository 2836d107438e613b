"""The package's imports point down: import-linter's contracts (pyproject.toml) hold, a new
upward import breaks them, and no module takes part in an import cycle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]


def lint() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip


def test_the_layer_contracts_hold():
    result = lint()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_them():
    upward = REPO / "ttc_agent" / "backends" / "_upward_import_probe.py"
    upward.write_text("from ttc_agent.server import ChatService  # a backend must not know the server\n")
    try:
        result = lint()
    finally:
        upward.unlink()
    assert result.returncode != 0
    assert "ttc_agent.backends._upward_import_probe -> ttc_agent.server" in result.stdout


def test_no_module_takes_part_in_an_import_cycle():
    graph = grimp.build_graph("ttc_agent")
    cycles = [
        (a, b)
        for a in graph.modules
        for b in graph.find_modules_directly_imported_by(a)
        if a != b and graph.chain_exists(importer=b, imported=a)
    ]
    assert cycles == []
