"""docs/quickstart.md runs as written, and langgraph.json points at a loadable graph."""

import json
from pathlib import Path

import pytest
from conftest import run_doc_code
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_quickstart_code_runs_in_order(monkeypatch, tmp_path, tf_backend):
    monkeypatch.chdir(tmp_path)
    namespace = run_doc_code(ROOT / "docs" / "quickstart.md")
    assert namespace["__blocks__"] >= 5
    assert namespace["out"]["ttc_ledger"].run_tokens <= 400
    from ttc_agent.cli import app

    result = CliRunner().invoke(app, ["report", "quickstart.jsonl"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert len(Path("quickstart.jsonl").read_text().splitlines()) == 7


def test_langgraph_json_names_a_compiled_graph(tf_backend):
    import importlib.util

    from langgraph.graph.state import CompiledStateGraph

    spec = json.loads((ROOT / "langgraph.json").read_text())
    path, attr = spec["graphs"]["multistep_math"].split(":")
    module_spec = importlib.util.spec_from_file_location("ttc_example_graph", ROOT / path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    assert isinstance(getattr(module, attr), CompiledStateGraph)
    assert spec["dependencies"] == ["."]


def test_demo_under_a_workflow_budget(monkeypatch, tmp_path, tf_backend):
    from ttc_agent.cli import app
    from ttc_agent.report import read_decisions

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app,
        ["demo", "What is 3 + 4 + 5?", "--model", "smollm2-135m", "--max-tokens", "400", "--max-seconds", "40"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "budget left" in result.output
    verdicts = ("right ✓", "(right: 12)", "not finished: the budget ran out")
    assert sum(v in result.output for v in verdicts) == 1, result.output
    records = read_decisions(tmp_path / "ttc-demo.jsonl")
    spent = sum(r["actual"]["total_tokens"] for r in records)
    assert spent <= 400 and all(r.get("budget") or r.get("exhausted") for r in records)
