"""benchmarks/peers.py keeps every call as it ends, so a run stopped part-way (hours on 2 cores
for word problems) resumes without asking any method a question twice, and summarises only the
questions every method answered."""

from __future__ import annotations

import json

import pytest

from benchmarks import peers
from ttc_agent.evaluation.datasets import Problem

QS = [Problem(f"q{i}", f"What is {i} + {i}?", str(2 * i), "test") for i in range(3)]


class Stop(Exception):
    """Stands for a kill part-way through a run."""


def test_a_stopped_run_resumes_where_it_stopped(tmp_path, monkeypatch):
    monkeypatch.setattr(peers, "vllm_tokens", lambda url: (0.0, 0.0))
    asked: list[tuple[str, str]] = []

    def method(name, stop_at=None):
        def run(p):
            if p.id == stop_at:
                raise Stop
            asked.append((name, p.id))
            return f"The answer is {2 * int(p.id[1:])}.", None

        return run

    log = tmp_path / "calls.jsonl"
    with pytest.raises(Stop):
        peers.run_all({"right": method("right"), "wrong": method("wrong", stop_at="q1")}, QS, "", log)
    first = list(asked)
    assert ("right", "q0") in first and ("wrong", "q0") in first and ("wrong", "q1") not in first
    # Only the answered questions count; a line cut by the kill is skipped.
    with log.open("a") as f:
        f.write('{"method": "wrong", "id": "q1", "cor')
    assert [c["id"] for c in peers.answered(log, ["right", "wrong"], QS)["right"]] == ["q0"]

    asked.clear()
    peers.run_all({"right": method("right"), "wrong": method("wrong")}, QS, "", log)
    assert set(asked).isdisjoint(first) and len(asked) == 2 * len(QS) - len(first)
    runs = peers.answered(log, ["right", "wrong"], QS)
    assert [c["id"] for c in runs["wrong"]] == ["q0", "q1", "q2"]
    assert all(c["correct"] for calls in runs.values() for c in calls)
    assert all("method" not in c for calls in runs.values() for c in calls)
    assert len([json.loads(x) for x in log.read_text().splitlines() if x.endswith("}")]) == 2 * len(QS)


def test_a_refitted_bundle_asks_ttc_agents_rows_again_and_keeps_the_peers(tmp_path, monkeypatch):
    monkeypatch.setattr(peers, "vllm_tokens", lambda url: (0.0, 0.0))
    asked: list[str] = []

    def method(name):
        def run(p):
            asked.append(name)
            return "The answer is 0.", None

        return run

    rows = {"peer": method("peer"), "ttc-agent serve": method("ttc-agent serve")}
    log = tmp_path / "calls.jsonl"
    peers.run_all(rows, QS, "", log, {"ttc-agent serve": "bundle-1"})
    asked.clear()
    peers.run_all(rows, QS, "", log, {"ttc-agent serve": "bundle-2"})
    assert asked == ["ttc-agent serve"] * len(QS)
    runs = peers.answered(log, list(rows), QS, {"ttc-agent serve": "bundle-2"})
    assert [c["version"] for c in runs["ttc-agent serve"]] == ["bundle-2"] * len(QS)
    assert peers.answered(log, list(rows), QS, {"ttc-agent serve": "bundle-3"})["peer"] == []
