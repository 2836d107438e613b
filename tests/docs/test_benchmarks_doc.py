"""docs/benchmarks.md and docs/benchmarks-smollm2.md: every generated block is what its saved
results render (`python -m benchmarks.docs --check`), and a changed result makes it stale."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

from benchmarks import docs

REPO = Path(__file__).resolve().parents[2]


def test_every_generated_block_matches_its_saved_results():
    result = subprocess.run([sys.executable, "-m", "benchmarks.docs", "--check"], cwd=REPO, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_changed_result_makes_its_block_stale(monkeypatch):
    saved = docs._results

    def changed(name):
        results = copy.deepcopy(saved(name))
        if name == "temperatures":
            results["greedy"]["accuracy"] += 0.1
        return results

    monkeypatch.setattr(docs, "_results", changed)
    assert docs.stale() == ["temperatures"]


def test_every_block_in_the_docs_has_a_renderer():
    """No table between markers is left for a hand to edit: each is rendered from results."""
    names = {name for path in docs.DOCS for name in re.findall(r"<!-- ([\w.-]+):begin -->", path.read_text())}
    assert names == set(docs.rendered())
