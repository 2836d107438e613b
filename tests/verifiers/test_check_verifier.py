"""Execution-checked verification: pass, fail, unknown, and a check that raises."""

import pytest
from fakes import ScriptedBackend, texts

from ttc_agent.strategies import BestOfN
from ttc_agent.verifiers import CheckVerifier, VerifierError


def is_seven(question, candidate):
    if "?" in candidate:
        raise RuntimeError("cannot check a question")
    if "maybe" in candidate:
        return None
    return "7" in candidate


def test_pass_fail_and_unknown_scores():
    scores = CheckVerifier(is_seven).score("3 + 4?", ["= 7", "= 8", "maybe", "what?"])
    assert scores.values == (1.0, 0.0, 0.5, 0.5) and scores.seconds >= 0


def test_raising_check_can_be_an_error_instead():
    with pytest.raises(VerifierError, match="candidate 0"):
        CheckVerifier(is_seven, on_error="raise").score("3 + 4?", ["what?"])


def test_bad_checks_and_settings():
    with pytest.raises(VerifierError, match="True, False or None"):
        CheckVerifier(lambda q, s: 0.3).score("q", ["a"])
    with pytest.raises(VerifierError, match="unknown_score"):
        CheckVerifier(is_seven, unknown_score=1.0)
    with pytest.raises(VerifierError, match="on_error"):
        CheckVerifier(is_seven, on_error="ignore")


def test_checked_candidate_wins_best_of_n_selection():
    backend = ScriptedBackend(texts("= 8", "= 8", "= 7", "maybe 9"))
    out = BestOfN(4, select="verifier", verifier=CheckVerifier(is_seven)).run("What is 3 + 4?", backend)
    assert out.answer == "7" and [c.score for c in out.candidates] == [0.0, 0.0, 1.0, 0.5]


def test_react_example_calculator_check():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
    from react_calculator import calculator_check

    assert calculator_check("What is 345 + 678?", "345 + 678 = 1023") is True
    assert calculator_check("What is 345 + 678?", "345 + 678 = 1024") is False
    assert calculator_check("Tell me a story.", "Once upon a time") is None
