"""PRMVerifier plumbing on tiny randomly initialised models of the right classes."""

import pytest
from fakes import make_tiny_prm

from ttc_agent.errors import ModelLoadError
from ttc_agent.verifiers import PRMVerifier, VerifierError

SOLUTION = "Step one: 3 + 4 = 7.\n\nStep two: 7 * 2 = 14.\n\nThe answer is 14."


@pytest.fixture(scope="module", params=["qwen", "math-shepherd", "value-head"])
def prm(request, embedded_dir, tmp_path_factory):
    folder = make_tiny_prm(embedded_dir, tmp_path_factory.mktemp(request.param), request.param)
    return PRMVerifier(folder, convention=request.param)


def test_one_probability_per_solution_with_step_scores(prm):
    partial = "Step one: 3 + 4 = 7.\n\n"
    scores = prm.score("What is (3 + 4) * 2?", [SOLUTION, partial, "14"])
    assert len(scores.values) == 3 and all(0 <= v <= 1 for v in scores.values)
    assert scores.tokens > 20 and scores.seconds > 0
    steps, _ = prm.step_scores("What is (3 + 4) * 2?", [SOLUTION, partial])
    assert [len(s) for s in steps] == [3, 1], "one score per step, at each step tag"
    assert scores.values[0] == pytest.approx(min(steps[0]))
    # Deterministic: the same input scores the same, alone or in a batch.
    assert prm.score("What is (3 + 4) * 2?", [SOLUTION]).values[0] == pytest.approx(scores.values[0], abs=1e-5)


def test_format_follows_the_convention(prm):
    text = prm.format("Q?", SOLUTION)
    tag = {"qwen": "<extra_0>", "math-shepherd": "ки", "value-head": "<extra_0>"}[prm.convention]
    assert text.count(tag) == 3


def test_aggregates(embedded_dir, tmp_path):
    folder = make_tiny_prm(embedded_dir, tmp_path / "m", "qwen")
    steps, _ = PRMVerifier(folder).step_scores("Q?", [SOLUTION])
    last = PRMVerifier(folder, aggregate="last").score("Q?", [SOLUTION]).values[0]
    assert last == pytest.approx(steps[0][-1], abs=1e-5)


def test_bad_prm_arguments(tmp_path):
    with pytest.raises(ModelLoadError, match="nowhere"):
        PRMVerifier(tmp_path / "nowhere")
    with pytest.raises(VerifierError, match="orca"):
        PRMVerifier(tmp_path, convention="orca")
    with pytest.raises(VerifierError, match="median"):
        PRMVerifier(tmp_path, aggregate="median")
