"""The pool benchmarks' measuring parts on small synthetic pools: the policy fitted on one pool and
replayed on another with its second stage priced (benchmarks/pool_policy.py), and replay against
real runs (benchmarks/replay_check.py)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import pool_policy, replay_check
from ttc_agent.policy import CallLimits
from ttc_agent.probes.latency import LatencyModel
from ttc_agent.strategies.menu import Menu

LATENCY = LatencyModel((1.0, 0.0, 0.1, 0.01, 0.0))
MENU = Menu(("greedy", "best_of_n(4, select=majority)", "two_stage(k=4, more=12)"), {"max_tokens": 64})
TWO_STAGE = "two_stage(k=4, more=12)"


def pool(ids: range) -> list[dict]:
    """Questions whose id is even: the first samples agree and are right; odd: the first stage
    votes wrong and twelve more samples put it right. Greedy is right on the even ones."""
    records = []
    for i in ids:
        even = i % 2 == 0
        answers = ["4"] * 16 if even else ["5", "5", "4", "5"] + ["4"] * 12
        samples = [{"answer": a, "correct": a == "4", "tokens": 10 + (i % 3), "finish": "stop", "text": "",
                    "confidence": -0.3, "mean_logprob": -0.3, "window_means": [-0.3]} for a in answers]  # fmt: skip
        base = {"schema": "pool-1", "dataset": "test", "problem_id": f"q{i}", "level": 0, "scope": "all",
                "messages": [{"role": "user", "content": f"What is 2 + 2? Think of {i} apples."}], "gold": "4",
                "max_tokens": 64, "prompt_tokens": 20}  # fmt: skip
        greedy = dict(samples[0], answer="4" if even else "5", correct=even)
        records += [{**base, "temperature": 0.0, "samples": [greedy]}, {**base, "temperature": 0.7, "samples": samples}]
    return records


@pytest.fixture(scope="module")
def fitted():
    return pool_policy.fit_bundle(MENU, pool(range(0, 40)), LATENCY, {})


def test_the_second_stage_is_decided_at_the_policys_price_and_by_the_default_rule_where_novel(fitted):
    from ttc_agent.evaluation.pool_replay import replay_pool
    from ttc_agent.probes.table import TraceTable

    test = pool(range(40, 50))
    static = replay_pool(test, MENU.specs, LATENCY, **MENU.defaults)
    table = TraceTable.from_records(static, MENU.specs)
    j = MENU.specs.index(TWO_STAGE)
    none = np.zeros(len(table.ids), bool)
    at = pool_policy.priced_outcomes(fitted, test, static, table, none, LATENCY)
    free, dear = at(CallLimits()), at(CallLimits(lambda_tokens=1.0))
    # Free: the odd questions continue and are put right; dear: nothing continues.
    assert free.correct[:, j].mean() == 1.0 and (free.tokens[:, j] > dear.tokens[:, j]).all()
    assert dear.correct[:, j].mean() == 0.5
    # Flagged questions run the default rule (the odd ones disagree: it draws the cap), whatever the price.
    novel = pool_policy.priced_outcomes(fitted, test, static, table, np.ones(len(table.ids), bool), LATENCY)
    assert novel(CallLimits(lambda_tokens=1.0)).correct[:, j].mean() == 1.0
    # Other strategies do not depend on the price.
    assert (free.correct[:, 1] == dear.correct[:, 1]).all() and (free.tokens[:, 0] == dear.tokens[:, 0]).all()


def test_evaluate_replays_the_policy_and_scores_the_stage2_model_on_held_out_pools(fitted):
    result = pool_policy.evaluate(fitted, pool(range(40, 60)), LATENCY, bootstrap=20)
    assert result["queries"] == 20 and 0.0 <= result["flagged"] <= 1.0
    assert result["static"]["greedy"]["accuracy"] == 0.5 and result["best_static"] == TWO_STAGE
    stage2 = result["stage2"][TWO_STAGE]
    assert stage2["questions"] == 20 and stage2["stop_right"] == 0.5 and stage2["auroc"] == 1.0
    targets = pool_policy.targets(result)
    assert set(targets) >= {"tokens_met", "seconds_met", "gap_met", "token_ratio"}
    reach = pool_policy.within_reach(result)
    assert reach["best_static_accuracy"] == 1.0 and reach["met"] == (
        reach["policy_accuracy_at_its_tokens"] is not None and reach["policy_accuracy_at_its_tokens"] >= 0.98
    )


def test_the_replay_check_compares_means_and_cost_ratios_per_strategy():
    def run(pid, correct, tokens, seconds):
        return {"problem_id": pid, "strategy": "greedy", "correct": correct, "total_tokens": tokens, "seconds": seconds}

    real = [run(f"q{i}", i % 2 == 0, 100, 10.0) for i in range(10)]
    close = [run(f"q{i}", i % 2 == 1, 103, 11.0) for i in range(10)]
    (row,) = replay_check.compare(real, close, ["greedy", "best_of_n(4, select=majority)"]).values()
    assert row["questions"] == 10 and row["accuracy_met"] and row["tokens_met"] and row["seconds_met"]
    assert row["tokens_ratio"] == pytest.approx(1.03) and row["seconds_ratio"] == pytest.approx(1.1)
    far = [run(f"q{i}", True, 110, 13.0) for i in range(10)]
    (row,) = replay_check.compare(real, far, ["greedy"]).values()
    assert not row["tokens_met"] and not row["seconds_met"] and not row["accuracy_met"]


def test_an_auroc_on_too_few_right_or_wrong_questions_has_no_interval():
    scores = np.linspace(0, 1, 20)
    few = pool_policy.auroc_interval(np.array([0] * 17 + [1] * 3), scores)
    assert few["auroc"] == 1.0 and few["auroc_ci"] is None
    enough = pool_policy.auroc_interval(np.array([0, 1] * 10), scores)
    low, high = enough["auroc_ci"]
    assert low <= enough["auroc"] <= high and high - low > 0.1
    assert pool_policy.auroc_interval(np.zeros(20, int), scores) == {"auroc": None, "auroc_ci": None}
