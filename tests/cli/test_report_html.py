"""`ttc-agent report LOG --html OUT.html`: one self-contained page of a workflow's decisions,
checked as parsed HTML and, for a real log of the demo, in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ttc_agent.cli import app
from ttc_agent.report_html import render_html

CHROMIUM = shutil.which("chromium-headless-shell") or shutil.which("chromium")


def record(i: int, choice: str | None = "greedy", tokens: int = 100, seconds: float = 1.5, **extra) -> dict:
    base = {
        "time": 1000.0 + i, "node": "ttc", "choice": choice, "feasible": True, "answer": str(i),
        "candidates": [{"strategy": "greedy", "accuracy": 0.6, "tokens": 90.0, "tokens_q90": 130.0, "seconds": 1.2,
                        "utility": 0.6, "fits": True},
                       {"strategy": "two_stage(k=4, more=12)", "accuracy": 0.7, "tokens": 400.0, "tokens_q90": 900.0,
                        "seconds": 4.0, "utility": 0.7, "fits": True}],
        "actual": {"prompt_tokens": 20, "completion_tokens": tokens - 20, "verifier_tokens": 0, "total_tokens": tokens,
                   "rounds": 1, "seconds": seconds, "verifier_seconds": 0.0},
    }  # fmt: skip
    return {**base, **extra}


class Collect(HTMLParser):
    """Tags, ids and text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: dict[str, str] = {}
        self._id: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        self._id = attrs.get("id")

    def handle_endtag(self, tag):
        self._id = None

    def handle_data(self, data):
        if self._id:
            self.text[self._id] = self.text.get(self._id, "") + data


def parse(page: str) -> Collect:
    c = Collect()
    c.feed(page)
    return c


def test_the_page_shows_every_call_the_totals_the_budget_and_each_record():
    budget = {"before": {"tokens_left": 500.0, "seconds_left": None}, "after": {"tokens_left": 400.0, "seconds_left": None},
              "reserve": {"tokens": 80.0, "seconds": None}}  # fmt: skip
    stages = {"signals": {"agreement": 0.5}, "options": [0, 4, 12], "taken": 12}
    records = [
        record(1, budget=budget),
        record(
            2, "two_stage(k=4, more=12)", 420, 4.5, stages=stages, budget={**budget, "after": {"tokens_left": -20.0}}
        ),
        record(3, answer="<script>alert(1)</script>", finish_reason="length"),
        {
            "time": 1004.0,
            "node": "ttc",
            "choice": None,
            "feasible": False,
            "answer": None,
            "actual": {},
            "exhausted": {"message": "the workflow's tokens ran out"},
        },  # fmt: skip
    ]
    page = render_html(records, "demo log")
    c = parse(page)
    assert c.text["calls"] == "3" and c.text["total-tokens"] == "620" and c.text["total-seconds"] == "7.50"
    assert sum(1 for tag, a in c.tags if tag == "details") == 4
    assert sum(1 for tag, a in c.tags if tag == "rect" and a.get("class") == "call") == 6  # seconds and tokens
    assert {a.get("data-strategy") for tag, a in c.tags if tag == "tr"} >= {"greedy", "two_stage(k=4, more=12)"}
    assert "second stage 12 more (agreement 0.50)" in page and "stopped: the workflow" in page
    assert "cut by length" in page and "tokens left after each call" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r"(src|href)=\"https?://", page)  # nothing fetched at view time
    assert page.count("<script>") == 1  # the page's own


def test_the_cli_writes_the_page_beside_the_table(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(record(i)) + "\n" for i in range(3)))
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", str(log), "--html", str(out), "--plot", str(tmp_path / "p.png")])
    assert result.exit_code == 0, result.output
    assert "html:" in result.output and parse(out.read_text()).text["calls"] == "3"


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium (Debian's chromium-headless-shell) is not installed")
def test_the_demos_log_renders_in_headless_chromium(tmp_path):
    log = tmp_path / "demo.jsonl"
    demo = subprocess.run(
        [sys.executable, "-m", "ttc_agent.cli", "demo", "--model", "smollm2-135m", "--max-tokens", "900",
         "--trace", str(log)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    records = [json.loads(line) for line in log.read_text().splitlines()]
    out = tmp_path / "report.html"
    assert (
        CliRunner().invoke(app, ["report", str(log), "--html", str(out), "--plot", str(tmp_path / "p.png")]).exit_code
        == 0
    )
    browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([*browser, "--dump-dom", out.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr
    errors = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert errors == []
    c = parse(dom.stdout)
    ran = [r for r in records if r.get("choice")]
    assert c.text["calls"] == str(len(ran)) and len(ran) >= 1
    assert c.text["total-tokens"] == str(sum(r["actual"]["total_tokens"] for r in ran))
    assert sum(1 for tag, _ in c.tags if tag == "details") == len(records)
    shot = tmp_path / "report.png"
    subprocess.run(
        [*browser, f"--screenshot={shot}", "--window-size=1100,1400", out.as_uri()], capture_output=True, timeout=120
    )
    assert shot.is_file() and shot.stat().st_size > 10_000
    Path(shot).unlink()  # screenshots stay out of git
