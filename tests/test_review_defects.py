"""Defects found in the review of the first batch, each with the test that failed before its fix."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fakes import ScriptedBackend, bundle_for, texts

from ttc_agent.budgets.managers import Balance, Paced
from ttc_agent.errors import InvalidRequestError
from ttc_agent.nodes import TTCEngine, TTCNode

REPO = Path(__file__).resolve().parents[1]


def test_calibrated_price_keeps_each_runs_other_price():
    """The cache of calibrated prices was keyed on the target alone and overwrote both prices:
    a later run with the same target and its own lambda_seconds got the first run's."""
    node = TTCNode(TTCEngine(ScriptedBackend(texts("= 5")), bundle_for(None)))
    first = node.limits({"configurable": {"ttc": {"target_mean_tokens": 90, "lambda_seconds": 0.0}}})
    second = node.limits({"configurable": {"ttc": {"target_mean_tokens": 90, "lambda_seconds": 0.5}}})
    assert first.lambda_seconds == 0.0 and second.lambda_seconds == 0.5
    assert first.lambda_tokens > 0 and second.lambda_tokens >= 0


def test_paced_starting_prices_are_bounded_and_never_taken_from_a_recycled_id():
    bundle = bundle_for(None)
    calibration = bundle.calibration_
    manager = Paced()

    def balance(total: float) -> Balance:
        return Balance(total, None, total, None, 0, 4)

    for total in range(1, 400):
        manager._initial(balance(float(total)), calibration)
    assert len(manager._start) <= 256
    # An entry whose calibration is another object (as when an id is reused after the first
    # object was freed) is not trusted: the prices are computed for this calibration.
    key = (100.0 / 4, None, id(calibration))
    manager._start[key] = (object(), 123.0, 456.0)  # type: ignore[assignment]
    assert manager._initial(balance(100.0), calibration)[0] != 123.0


def test_run_says_that_greedy_ignores_the_seed(monkeypatch):
    from typer.testing import CliRunner

    from ttc_agent import cli

    monkeypatch.setattr(
        cli.run, "cli_backend", lambda backend, model, api_key=None, dtype=None: ScriptedBackend(texts("= 5"))
    )
    result = CliRunner().invoke(cli.app, ["run", "--seed", "3", "What is 2 + 3?"])
    assert result.exit_code == 0 and "--seed 3 has no effect" in result.output
    sampled = CliRunner().invoke(cli.app, ["run", "--strategy", "best_of_n(2, select=majority)", "--seed", "3", "q?"])
    assert sampled.exit_code == 0 and "no effect" not in sampled.output


ABSOLUTE = re.compile(r"(?<![\w.:])/(?:work|root|home|Users|tmp|var|opt|mnt)/")


@pytest.mark.parametrize(
    "pattern", ["benchmarks/results/*.json", "benchmarks/results/*.jsonl", "docs/**/*.svg", "docs/*.md", "*.md"]
)
def test_no_committed_result_holds_an_absolute_path(pattern):
    offenders = [str(p.relative_to(REPO)) for p in REPO.glob(pattern) if ABSOLUTE.search(p.read_text())]
    assert not offenders, f"absolute paths of the machine that made them in {offenders}"


def test_docs_link_only_inside_the_repository():
    outside = [
        f"{p.relative_to(REPO)}: {link}"
        for p in [REPO / "README.md", *REPO.glob("docs/*.md")]
        for link in re.findall(r"\]\(([^)]+)\)", p.read_text())
        if not link.startswith(("http://", "https://", "#"))
        and not (p.parent / link.split("#")[0]).resolve().is_relative_to(REPO)
    ]
    assert not outside, f"links that leave the repository: {outside}"


def test_data_location_is_explicit(monkeypatch, tmp_path):
    from ttc_agent.evaluation.datasets import load_gsm8k

    monkeypatch.delenv("TTC_AGENT_DATA", raising=False)
    with pytest.raises(InvalidRequestError, match="set TTC_AGENT_DATA"):
        load_gsm8k(limit=1)
    with pytest.raises(InvalidRequestError, match="has no gsm8k/"):
        load_gsm8k(limit=1, data=tmp_path)
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text(json.dumps({"question": "1+1?", "answer": "#### 2"}) + "\n")
    assert load_gsm8k(limit=1, data=tmp_path)[0].answer == "2"


def test_unused_mean_logprob_is_gone():
    from ttc_agent.backends.base import Completion

    assert not hasattr(Completion, "mean_logprob")
