"""LearnedVerifier: fit, score, safe save/load, mismatch errors, and use from a strategy spec."""

import numpy as np
import pytest
from fakes import ScriptedBackend, make_tiny_prm, texts

from ttc_agent.errors import InvalidRequestError
from ttc_agent.strategies import parse_strategy
from ttc_agent.verifiers import VerifierError
from ttc_agent.verifiers.learned import CandidateEncoder, LearnedVerifier, default_layers, examples_from_traces

QUESTIONS = [f"What is {a} + {b}?" for a, b in [(1, 2), (3, 4), (5, 6), (7, 8), (2, 9), (4, 4), (6, 1), (8, 3)]]
# Correct candidates are terse; wrong ones ramble (text statistics alone separate them).
CANDIDATES = [
    [str(sum(map(int, q[8:-1].split(" + ")))), "I am really not sure about this one at all, sorry."] * 2
    for q in QUESTIONS
]
LABELS = [[True, False, True, False] for _ in QUESTIONS]


@pytest.fixture(scope="module")
def tiny_model(embedded_dir, tmp_path_factory):
    return make_tiny_prm(embedded_dir, tmp_path_factory.mktemp("tiny"), "math-shepherd")


def test_fit_score_save_and_load(tiny_model, tmp_path):
    verifier = LearnedVerifier(CandidateEncoder(tiny_model, layers=(0, 1))).fit(QUESTIONS, CANDIDATES, LABELS)
    scores = verifier.score("What is 2 + 2?", ["4", "I am really not sure about this one at all, sorry."])
    assert scores.values[0] > scores.values[1] and all(0 <= v <= 1 for v in scores.values)
    assert scores.tokens > 20 and scores.seconds > 0
    verifier.save(tmp_path / "v")
    again = LearnedVerifier.load(tmp_path / "v", model=tiny_model)
    assert again.score("What is 2 + 2?", ["4"]).values[0] == pytest.approx(scores.values[0], abs=1e-6)


def test_the_fit_cache_reads_each_candidate_once_and_gives_the_same_features(tiny_model):
    encoder = CandidateEncoder(tiny_model, layers=(0, 1))
    fresh, tokens = encoder.encode(QUESTIONS[0], CANDIDATES[0])
    cached, read = encoder.encode(QUESTIONS[0], CANDIDATES[0], cache=True)
    assert read > 0 and read < tokens, "the repeated candidates were read once"
    assert np.abs(fresh - cached).max() < 1e-5
    again, read_again = encoder.encode(QUESTIONS[0], CANDIDATES[0][:2], cache=True)
    assert read_again == 0 and np.abs(again - cached[:2]).max() == 0
    _, scored = encoder.encode(QUESTIONS[0], CANDIDATES[0][:2])
    assert scored > 0, "without the cache (scoring), the cost is what was read"


def test_nothing_to_learn_and_mismatches_are_refused(tiny_model, embedded_dir, tmp_path):
    verifier = LearnedVerifier(CandidateEncoder(tiny_model, layers=(0, 1)))
    with pytest.raises(VerifierError, match="nothing to learn"):
        verifier.fit(QUESTIONS[:2], CANDIDATES[:2], [[True] * 4, [True] * 4])
    with pytest.raises(VerifierError, match="not trained"):
        verifier.score("q", ["a"])
    verifier.fit(QUESTIONS, CANDIDATES, LABELS).save(tmp_path / "v")
    with pytest.raises(VerifierError, match="model weights"):
        LearnedVerifier.load(tmp_path / "v", model=embedded_dir)
    with pytest.raises(InvalidRequestError, match="verifier.json"):
        LearnedVerifier.load(tmp_path / "nothing")
    with pytest.raises(InvalidRequestError, match="layers"):
        CandidateEncoder(tiny_model, layers=(0, 99))


def test_default_layers_scale_with_the_model(tiny_model):
    # The middle, three-quarters and last layer: SmolLM2's 30 give the layers it was tuned on,
    # Qwen2.5-0.5B's 24 give layers that exist.
    assert default_layers(30) == (15, 22, 30)
    assert default_layers(24) == (12, 18, 24)
    assert CandidateEncoder(tiny_model).layers == default_layers(1) == (0, 0, 1)


def test_examples_from_traces_needs_candidate_texts():
    rec = {
        "problem_id": "p",
        "messages": [{"role": "user", "content": "Q?"}],
        "candidates": [{"text": "a", "correct": True}, {"text": "b", "correct": False}],
    }
    q, c, y, ids = examples_from_traces([rec, {**rec, "candidates": rec["candidates"][:1]}])
    assert (q, c, y, ids) == (["Q?"], [["a", "b"]], [[True, False]], ["p"])
    with pytest.raises(InvalidRequestError, match="best_of_n"):
        examples_from_traces([{**rec, "candidates": []}])


@pytest.mark.slow
def test_trained_verifier_selects_inside_best_of_n_by_spec(tmp_path):
    LearnedVerifier(CandidateEncoder(layers=(15, 30))).fit(QUESTIONS, CANDIDATES, LABELS).save(tmp_path / "v")
    strategy = parse_strategy(f"best_of_n(2, select=verifier:{tmp_path / 'v'})")
    assert strategy.spec == f"best_of_n(2, select=verifier, verifier=learned:{tmp_path / 'v'})"
    backend = ScriptedBackend(texts("I am really not sure about this one at all, sorry.", "5"))
    out = strategy.run("What is 2 + 3?", backend)
    assert out.answer == "5", "the verifier preferred the terse, right candidate"
    assert out.cost.verifier_tokens > 0 and out.cost.verifier_seconds > 0


@pytest.mark.slow
def test_train_verifier_command_on_real_traces(tf_backend, tmp_path):
    from typer.testing import CliRunner

    from ttc_agent.cli import app
    from ttc_agent.evaluation.collect import collect
    from ttc_agent.evaluation.datasets import arithmetic
    from ttc_agent.evaluation.rollouts import collect_rollouts, read_rollouts
    from ttc_agent.strategies.menu import Menu

    problems = arithmetic(per_level=3, levels=(1, 2), seed=4)
    collect(
        problems,
        Menu(("best_of_n(4, select=majority)",), {"max_tokens": 24}),
        tf_backend,
        tmp_path / "traces",
        progress=False,
    )
    # Process labels: one candidate a run, its step prefixes continued twice by the real model.
    collect_rollouts(tmp_path / "traces", tf_backend, n=2, per_run=1, max_tokens=24, progress=False)
    rows = read_rollouts(tmp_path / "traces")
    assert len(rows) == 6 and all(0 <= s["value"] <= 1 for r in rows for s in r["steps"])
    result = CliRunner().invoke(
        app,
        [
            "train-verifier",
            "--traces",
            str(tmp_path / "traces"),
            "--out",
            str(tmp_path / "v"),
            "--layer",
            "15",
            "--layer",
            "30",
            "--test-fraction",
            "0.4",
            *(["--process"] if any(r["steps"] for r in rows) else []),
        ],
        env={"COLUMNS": "160"},
    )
    assert result.exit_code == 0, result.output
    assert "candidate AUROC" in result.output and "pass@N" in result.output
    assert (tmp_path / "v" / "verifier.json").is_file() and (tmp_path / "v" / "probe.skops").is_file()


def test_step_prefixes_and_rollout_labels(tmp_path):
    from ttc_agent.evaluation.collect import collect
    from ttc_agent.evaluation.datasets import Problem, arithmetic
    from ttc_agent.evaluation.rollouts import collect_rollouts, read_rollouts, rollout_values, step_prefixes
    from ttc_agent.strategies.menu import Menu

    assert step_prefixes("First.\n\nSecond.\n\nSo 5.") == ["First.\n\n", "First.\n\nSecond.\n\n"]
    assert step_prefixes("2 + 3 = 5. The answer is 5.") == ["2 + 3 = 5. "]
    assert step_prefixes("5") == [] and step_prefixes("") == []
    problem = Problem("p", "What is 2 + 3?", "5", "arithmetic", 1, "first_result")
    half = ScriptedBackend(lambda p, params, i: texts("= 5", "= 6")(p, params, i))
    (step,) = rollout_values(problem, "2 + 3 makes five. So it is 5.", half, n=4)
    assert step == {"prefix": "2 + 3 makes five. ", "value": 0.5, "rollouts": 4, "tokens": 30, "seconds": 0.01}
    # In a trace folder: one right and one wrong candidate per run, resumable.
    problems = arithmetic(per_level=2, levels=(1,), seed=0)
    menu = Menu(("best_of_n(2, select=majority)",), {"max_tokens": 24})
    collect(problems, menu, ScriptedBackend(texts("It is 99. So 99.", "Hmm. Maybe 3.")), tmp_path, progress=False)
    assert collect_rollouts(tmp_path, half, n=2, per_run=2, progress=False) == 4
    assert collect_rollouts(tmp_path, half, n=2, per_run=2, progress=False) == 0, "a restart skips what is done"
    assert len(read_rollouts(tmp_path)) == 4
    with pytest.raises(InvalidRequestError, match="n >= 1"):
        collect_rollouts(tmp_path, half, n=0)


def test_process_examples_use_the_math_shepherd_hard_label():
    from ttc_agent.verifiers.learned import prefixes_from_rollouts

    records = [{"problem_id": "p", "messages": [{"role": "user", "content": "What is 2 + 3?"}]}]
    rollouts = [{"problem_id": "p", "steps": [{"prefix": "a. ", "value": 0.25}, {"prefix": "a. b. ", "value": 0.0}]}]
    q, c, y, ids = prefixes_from_rollouts(rollouts, records)
    assert q == ["What is 2 + 3?"] and c == [["a. ", "a. b. "]] and y == [[True, False]] and ids == ["p"]
