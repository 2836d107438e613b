"""The verdict on a fitted bundle: AUROC intervals, informative or not, questions to resolve."""

import pytest

from ttc_agent.evaluation.verdict import auroc_interval, verdicts


def metric(auroc, accuracy, runs, tokens_mape=0.1):
    return {"auroc": auroc, "accuracy": accuracy, "runs": runs, "tokens_mape": tokens_mape}


def test_the_interval_narrows_with_runs_and_stays_in_0_1():
    narrow, wide = auroc_interval(0.7, 500, 500), auroc_interval(0.7, 10, 10)
    assert wide[0] < narrow[0] < 0.7 < narrow[1] < wide[1] <= 1.0
    assert auroc_interval(0.99, 5, 5)[1] == 1.0


def test_informative_weak_and_one_outcome_probes_get_their_verdicts():
    strong, weak, flat = verdicts(
        {"greedy": metric(0.85, 0.5, 400), "best_of_n(8)": metric(0.6, 0.3, 40, 0.6), "beam": metric(None, 1.0, 40)},
        total_questions=100,
    )
    assert strong.accuracy == "informative" and strong.questions_needed is None and strong.tokens == "usable"
    assert weak.accuracy == "not yet shown informative" and weak.tokens.startswith("rough (MAPE 60%")
    low, high = weak.auroc_interval
    assert weak.questions_needed == pytest.approx(100 * ((high - low) / 2 / 0.05) ** 2, abs=1)
    assert flat.accuracy.startswith("nothing to learn") and flat.auroc is None
    assert "about" in weak.line() and "AUROC 0.60" in weak.line()


def test_too_few_runs_of_an_outcome_give_no_verdict_however_extreme_the_auroc():
    """One right run ranked above four wrong ones is AUROC 1.00 with a collapsed interval: no
    verdict, and how many questions would hold five of each."""
    (few,) = verdicts({"greedy": metric(1.0, 0.2, 5)}, total_questions=20)
    assert few.accuracy == "too few held-out runs to tell (1 right, 4 wrong)" and few.auroc_interval is None
    assert few.questions_needed == 100 and "[" not in few.line() and "about 100 questions" in few.line()
    (enough,) = verdicts({"greedy": metric(0.9, 0.5, 20)}, total_questions=80)
    assert enough.accuracy == "informative" and enough.auroc_interval is not None
