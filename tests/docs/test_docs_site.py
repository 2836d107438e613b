"""The docs site (mkdocs-material, mkdocstrings): built with --strict, so a broken link, a missing
page or a cross-reference to a name that does not exist fails the test command (a listed member
that does not exist fails tests/test_public_api.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(root / "mkdocs.yml"), "--site-dir", str(site)],
        capture_output=True, text=True, timeout=300, cwd=root, env=env,
    )  # fmt: skip


def copy_of_the_docs(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REPO / "docs", root / "docs")
    shutil.copy(REPO / "mkdocs.yml", root / "mkdocs.yml")
    (root / "ttc_agent").symlink_to(REPO / "ttc_agent")
    return root


def test_the_site_builds_strictly_with_the_api_reference(tmp_path):
    result = build(REPO, tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("TTCEngine", "TwoStage", "WorkflowBudget", "ProbeBundle", "Stage2Policy"):
        assert 'id="ttc_agent.' in api and name in api
    assert "doc-signature" in api  # signatures, not just names
    assert (tmp_path / "site" / "img" / "two-stage.svg").is_file()


@pytest.mark.parametrize(
    "page,text,needle",
    [
        ("strategies.md", "\n\nSee [the missing page](missing.md).\n", "missing.md"),
        ("api.md", "\n\nSee [the strategy][ttc_agent.strategies.NoSuchStrategy].\n", "NoSuchStrategy"),
    ],
)
def test_a_broken_link_or_reference_fails_the_build(tmp_path, page, text, needle):
    root = copy_of_the_docs(tmp_path)
    with (root / "docs" / page).open("a") as f:
        f.write(text)
    result = build(root, tmp_path / "site")
    assert result.returncode != 0
    assert needle in result.stdout + result.stderr


def test_every_image_in_docs_img_is_linked_from_the_docs():
    text = "".join(p.read_text() for p in [REPO / "README.md", *(REPO / "docs").glob("*.md")])
    orphans = [p.name for p in (REPO / "docs" / "img").iterdir() if f"img/{p.name}" not in text]
    assert orphans == []
