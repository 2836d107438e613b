"""Dataset loaders read ../shared/data; the arithmetic task is graded and reproducible."""

import json
import os
from pathlib import Path

import pytest

from ttc_agent.errors import InvalidRequestError
from ttc_agent.evaluation.datasets import arithmetic, load_dataset, load_gsm8k, load_math500

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"
full_sets = pytest.mark.skipif(
    not (Path(os.environ.get("TTC_AGENT_DATA", "")) / "gsm8k").is_dir(),
    reason="the full GSM8K and MATH-500 sets are read from the folder TTC_AGENT_DATA names; none is here",
)


def test_gsm8k_answers_come_from_the_hash_line():
    problems = load_gsm8k("test", limit=2, data=FIXTURES)
    assert len(problems) == 2
    assert problems[0].answer == "18"  # Janet's ducks
    assert all(p.answer and p.source == "gsm8k" for p in problems)
    assert [p.id for p in load_gsm8k("train", data=FIXTURES)] == ["gsm8k-train-0", "gsm8k-train-1", "gsm8k-train-2"]


def test_math500_has_levels():
    problems = load_math500(data=FIXTURES)
    assert {p.level for p in problems} == {1, 2, 3, 4, 5}
    assert all(p.answer and p.source == "math500" for p in problems)


@full_sets
def test_the_full_sets_have_their_published_sizes():
    assert len(load_gsm8k("test")) == 1319 and len(load_gsm8k("train")) == 7473
    problems = load_math500()
    assert len(problems) == 500 and {p.level for p in problems} == {1, 2, 3, 4, 5}


def test_arithmetic_is_graded_and_seeded():
    a = arithmetic(per_level=5, levels=(1, 2, 3), seed=3)
    assert [p.level for p in a] == [1] * 5 + [2] * 5 + [3] * 5
    assert a == arithmetic(per_level=5, levels=(1, 2, 3), seed=3)
    assert a != arithmetic(per_level=5, levels=(1, 2, 3), seed=4)
    for p in a:
        x, op, y = p.question.removeprefix("What is ").removesuffix("?").split()
        assert int(p.answer) == int(x) + int(y)
    assert p.is_correct(p.answer) and not p.is_correct(str(int(p.answer) + 1))
    many = arithmetic(per_level=60, levels=(1,), seed=1)
    assert len({q.id for q in many}) == 60, "no question repeats within a level"
    with pytest.raises(InvalidRequestError, match="81 distinct"):
        arithmetic(per_level=82, levels=(1,))


def test_bad_dataset_arguments(tmp_path):
    with pytest.raises(InvalidRequestError, match="nope"):
        load_dataset("nope")
    with pytest.raises(InvalidRequestError, match="per_level"):
        arithmetic(per_level=0)
    with pytest.raises(InvalidRequestError, match=r"\[9\]"):
        arithmetic(levels=(9,))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"q": "x"}) + "\n")
    with pytest.raises(InvalidRequestError, match="question"):
        load_dataset(str(bad))
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"question": "1+1?", "answer": 2}) + "\n")
    assert load_dataset(str(good))[0].answer == "2"


def test_arithmetic_levels_graded_for_the_reference_model():
    from ttc_agent.evaluation.datasets import ARITHMETIC_GRADINGS, arithmetic

    problems = arithmetic(per_level=5, levels=(1, 2, 3, 4), seed=7, grading="qwen2.5-coder-0.5b")
    assert [p.level for p in problems] == [1] * 5 + [2] * 5 + [3] * 5 + [4] * 5
    assert all(p.id.startswith("arith-qwen-l") for p in problems)
    for p in problems:
        op, (a_lo, a_hi), (b_lo, b_hi) = ARITHMETIC_GRADINGS["qwen2.5-coder-0.5b"][p.level]
        a, b = (int(x) for x in p.question.removeprefix("What is ").rstrip("?").split(f" {op} "))
        assert a_lo <= a <= a_hi and b_lo <= b <= b_hi
        assert int(p.answer) == (a + b if op == "+" else a * b)
    assert arithmetic(per_level=3, seed=7) == arithmetic(per_level=3, seed=7, grading="smollm2-135m")
    with pytest.raises(InvalidRequestError, match=r"unknown arithmetic grading 'gpt'.*qwen2.5-coder-0.5b"):
        arithmetic(grading="gpt")
