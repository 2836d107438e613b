"""docs/nodes.md runs as written: every face of the engine, in order, on the embedded model."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_nodes_doc_code_runs_in_order(monkeypatch, tmp_path, tf_backend):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "nodes.md").read_text(), re.S)
    assert len(blocks) >= 7
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "nodes.md", "exec"), namespace)  # noqa: S102 - our own docs
    assert namespace["out"]["ttc_ledger"].run_tokens <= 600
    records = Path("nodes.jsonl").read_text().splitlines()
    assert len(records) >= 8, "every face wrote its decisions to the engine's trace"
