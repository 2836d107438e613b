"""Trace pools: one greedy run and samples per temperature per question, drawn once and resumed."""

from __future__ import annotations

import json

import pytest
from fakes import ScriptedBackend, texts

from ttc_agent.errors import InvalidRequestError
from ttc_agent.evaluation.datasets import Problem, arithmetic
from ttc_agent.evaluation.pools import POOL, PoolSpec, collect_pool, read_pool, read_pool_meta, window_means

SPEC = PoolSpec({0.5: 3}, max_tokens=20)
PROBLEMS = [Problem(f"q{i}", f"What is {i} + {i}?", str(2 * i), "test") for i in range(5)]


def draw(out, spec=SPEC, backend=None, problems=PROBLEMS, **kw):
    backend = backend or ScriptedBackend(texts("The answer is 4.", "The answer is 6.", tokens=8))
    return collect_pool(problems, backend, out, spec, progress=False, **kw), backend


def test_a_pool_holds_greedy_and_each_temperatures_samples_batched_by_question(tmp_path):
    written, backend = draw(tmp_path, PoolSpec({0.3: 4, 0.7: 2}, max_tokens=20), questions_per_call=2)
    assert written == 15  # 5 questions x (greedy + two temperatures)
    records = read_pool(tmp_path)
    by_key = {(r["problem_id"], r["temperature"]): r for r in records}
    assert set(by_key) == {(p.id, t) for p in PROBLEMS for t in (0.0, 0.3, 0.7)}
    assert [len(by_key[("q0", t)]["samples"]) for t in (0.0, 0.3, 0.7)] == [1, 4, 2]
    sample = by_key[("q2", 0.3)]["samples"][0]
    assert sample["answer"] == "4" and sample["correct"] is True and sample["tokens"] == 8
    assert sample["finish"] == "stop" and sample["confidence"] == pytest.approx(-0.5)
    assert sample["mean_logprob"] == pytest.approx(-0.5) and sample["window_means"] == [-0.5]
    # Two questions share each call: greedy, then each temperature, before the next pair.
    shapes = [(len(batch), params.n, params.temperature) for batch, params in backend.calls]
    assert shapes[:3] == [(2, 1, 0.0), (2, 4, 0.3), (2, 2, 0.7)] and shapes[-1] == (1, 2, 0.7)
    assert all(params.logprobs and params.max_tokens == 20 for _, params in backend.calls)
    assert by_key[("q0", 0.3)]["call"]["questions"] == 2 and by_key[("q4", 0.3)]["call"]["questions"] == 1
    assert read_pool_meta(tmp_path)["pool"] == {"samples": {"0.3": 4, "0.7": 2}, "max_tokens": 20}


def test_a_pool_resumes_after_a_kill_mid_line_and_draws_only_what_is_missing(tmp_path):
    draw(tmp_path, problems=PROBLEMS[:3])
    path = tmp_path / POOL
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]) + lines[-1][:40])  # the last record cut by a kill
    written, backend = draw(tmp_path)
    assert written == 1 + 2 * 2  # the cut record again, and both records of two new questions
    records = read_pool(tmp_path)
    assert len(records) == 10 and len({(r["problem_id"], r["temperature"]) for r in records}) == 10
    assert path.read_text().endswith("\n")
    assert draw(tmp_path)[0] == 0  # nothing left to draw


def test_another_model_or_temperature_set_is_refused_naming_both(tmp_path):
    draw(tmp_path, problems=PROBLEMS[:1])
    with pytest.raises(InvalidRequestError, match=r"'0.5': 3.*'0.7': 3"):
        draw(tmp_path, PoolSpec({0.7: 3}, max_tokens=20))
    other = ScriptedBackend(texts("4"))
    other.fingerprint = lambda: {"backend": "scripted", "model": "another"}
    with pytest.raises(InvalidRequestError, match="'model': 'scripted'.*'model': 'another'"):
        draw(tmp_path, backend=other)
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / "meta.json").write_text(json.dumps({"menu": {}, "backend": {}}))
    with pytest.raises(InvalidRequestError, match="not a trace pool folder"):
        draw(tmp_path / "traces")


@pytest.mark.parametrize(
    "samples,match",
    [({0.0: 4}, "temperature"), ({2.5: 4}, "temperature"), ({0.3: 0}, "samples at temperature 0.3"), ({}, "at least")],
)
def test_bad_pool_specs_are_refused(samples, match):
    with pytest.raises(InvalidRequestError, match=match):
        PoolSpec(samples)


@pytest.mark.parametrize("items", [["0.3"], ["0.3=x"], ["0.3=4", "0.3=8"]])
def test_bad_temperature_options_are_refused(items):
    with pytest.raises(InvalidRequestError, match="TEMPERATURE=SAMPLES"):
        PoolSpec.parse(items)


def test_window_means_follow_the_sample():
    assert window_means([]) == []
    assert window_means([-1.0, -3.0]) == [-2.0]
    means = window_means([0.0] * 40 + [-4.0] * 40, window=32, stride=8)
    assert means[0] == 0.0 and means[-1] == -4.0 and len(means) == len(range(0, 80 - 32 + 1, 8))


@pytest.mark.slow
def test_a_pool_on_the_embedded_model(tf_backend, tmp_path):
    problems = arithmetic(per_level=1, levels=(1, 2))
    written = collect_pool(problems, tf_backend, tmp_path, PoolSpec({0.7: 3}, max_tokens=24), progress=False)
    assert written == 4
    records = read_pool(tmp_path)
    samples = [s for r in records if r["temperature"] == 0.7 for s in r["samples"]]
    assert len(samples) == 6 and all(s["confidence"] is not None and s["window_means"] for s in samples)
    assert all(0 < s["tokens"] <= 24 and s["finish"] in ("stop", "length") for s in samples)
    greedy = [r for r in records if r["temperature"] == 0.0]
    assert all(r["seed"] is None and len(r["samples"]) == 1 for r in greedy)


def test_complete_questions_keeps_only_whole_pools_and_the_spec_round_trips():
    from ttc_agent.evaluation.pools import complete_questions

    spec = PoolSpec({0.5: 2, 0.7: 1}, max_tokens=64)
    assert PoolSpec.from_dict(spec.to_dict()) == spec

    def rec(pid, t, n):
        return {"problem_id": pid, "temperature": t, "samples": [{}] * n}

    records = [rec("a", 0.0, 1), rec("a", 0.5, 2), rec("a", 0.7, 1),  # whole
               rec("b", 0.0, 1), rec("b", 0.5, 2),  # its 0.7 samples not drawn yet
               rec("c", 0.0, 1), rec("c", 0.5, 1), rec("c", 0.7, 1)]  # fmt: skip
    kept = complete_questions(records, spec)
    assert [(r["problem_id"], r["temperature"]) for r in kept] == [("a", 0.0), ("a", 0.5), ("a", 0.7)]
    assert complete_questions(records, PoolSpec({0.5: 2}, max_tokens=64)) == [
        r for r in records[:5] if r["temperature"] != 0.7
    ]
