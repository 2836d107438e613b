"""The package's imports point down: import-linter's contracts (pyproject.toml) hold, a new
upward import breaks them, and no module takes part in an import cycle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

REPO = Path(__file__).resolve().parents[1]


def lint() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip


def test_the_layer_contracts_hold():
    result = lint()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("package", "line", "broken"),
    [
        ("backends", "from ttc_agent.server import ChatService", "ttc_agent.server"),  # a backend knows the server
        ("nodes", "from ttc_agent.evaluation.collect import collect", "ttc_agent.evaluation"),  # run time -> offline
        ("budgets", "import matplotlib.pyplot", "matplotlib"),  # plots inside the run time
    ],
)
def test_an_upward_import_breaks_them(package, line, broken):
    upward = REPO / "ttc_agent" / package / "_upward_import_probe.py"
    upward.write_text(line + "\n")
    try:
        result = lint()
    finally:
        upward.unlink()
    assert result.returncode != 0
    assert f"ttc_agent.{package}._upward_import_probe -> {broken}" in result.stdout


def test_no_module_takes_part_in_an_import_cycle():
    graph = grimp.build_graph("ttc_agent")
    cycles = [
        (a, b)
        for a in graph.modules
        for b in graph.find_modules_directly_imported_by(a)
        if a != b and graph.chain_exists(importer=b, imported=a)
    ]
    assert cycles == []


@pytest.mark.parametrize(
    ("old", "name", "new"),
    [
        ("ttc_agent.evaluation.menu", "Menu", "ttc_agent.strategies.menu"),
        ("ttc_agent.evaluation.machines", "seconds_on_one_machine", "ttc_agent.probes.machines"),
        ("ttc_agent.probes.training", "train_from_traces", "ttc_agent.evaluation.probe_training"),
        ("ttc_agent.verifiers.training", "train_verifier_from_traces", "ttc_agent.evaluation.verifier_training"),
        ("ttc_agent.budgets.simulate", "simulate", "ttc_agent.evaluation.simulate"),
    ],
)
def test_a_moved_module_still_imports_with_a_warning(old, name, new):
    import importlib

    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=new):
        moved = getattr(module, name)
    assert moved is getattr(importlib.import_module(new), name)
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        module.nothing_here  # noqa: B018


def test_probe_files_saved_before_the_estimators_moved_still_load():
    """The shipped bundles' skops files name `ttc_agent.probes.predictors.AccuracyProbe`."""
    from ttc_agent.demo import SHIPPED_BUNDLES
    from ttc_agent.estimators import AccuracyProbe
    from ttc_agent.probes import ProbeBundle

    for folder in SHIPPED_BUNDLES.values():
        bundle = ProbeBundle.load(folder)
        assert all(isinstance(models["accuracy"], AccuracyProbe) for models in bundle.models_.values())
