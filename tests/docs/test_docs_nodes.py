"""docs/nodes.md runs as written: every face of the engine, in order, on the embedded model."""

from pathlib import Path

import pytest
from conftest import run_doc_code

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_nodes_doc_code_runs_in_order(monkeypatch, tmp_path, tf_backend):
    monkeypatch.chdir(tmp_path)
    namespace = run_doc_code(ROOT / "docs" / "nodes.md")
    assert namespace["__blocks__"] >= 7
    assert namespace["out"]["ttc_ledger"].run_tokens <= 600
    records = Path("nodes.jsonl").read_text().splitlines()
    assert len(records) >= 8, "every face wrote its decisions to the engine's trace"
