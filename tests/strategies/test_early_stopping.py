"""Early-stopping and confidence-filtered sampling: adaptive self-consistency and DeepConf-style
voting, on a scripted backend (control flow) and on the embedded model (real runs)."""

from __future__ import annotations

import itertools

import pytest
from fakes import ScriptedBackend

from ttc_agent.backends.base import Completion
from ttc_agent.errors import BackendUnavailableError, InvalidRequestError
from ttc_agent.evaluation.datasets import Problem
from ttc_agent.evaluation.records import outcome_record, reselect
from ttc_agent.strategies import AdaptiveSC, BestOfN, DeepConf, LogprobsUnavailableError, parse_strategy
from ttc_agent.strategies.adaptive import majority_settled
from ttc_agent.strategies.base import Candidate, TokenBudgetError
from ttc_agent.strategies.selection import confidence, most_confident


def stream(*answers: str, tokens: int = 5, reason: str = "stop"):
    """A `make` function that hands out ``answers`` in order across calls (then repeats the last)."""
    feed = itertools.chain(answers, itertools.repeat(answers[-1]))

    def make(prompt, params, i):
        return Completion(f"= {next(feed)}", reason, tokens, (-0.5,) * tokens if params.logprobs else None)

    return make


def cand(answer: str | None, conf: float | None = None) -> Candidate:
    return Candidate("", answer, None, 5, "stop", conf)


def test_majority_settled_is_the_beta_posterior_of_the_leader():
    assert majority_settled([cand("7")] * 4) == pytest.approx(1 - 0.5**5)
    assert majority_settled([cand("7")] * 3 + [cand("9")]) == pytest.approx(0.8125)
    assert majority_settled([cand(None)] * 4) == pytest.approx(0.5)


def test_unanimous_first_round_stops_after_one_batched_request():
    backend = ScriptedBackend(stream("7"))
    out = AdaptiveSC(max_n=16, batch=4).run("What is 3 + 4?", backend)
    assert len(backend.calls) == 1 and backend.calls[0][1].n == 4
    assert out.answer == "7" and len(out.candidates) == 4 and out.stop_reason == "converged"
    assert out.cost.rounds == 1 and out.cost.completion_tokens == 20


def test_split_votes_keep_sampling_to_max_n_with_a_fresh_seed_each_round():
    backend = ScriptedBackend(stream(*["7", "9"] * 8))
    out = AdaptiveSC(max_n=16, batch=4, seed=5).run("q?", backend)
    assert [c[1].n for c in backend.calls] == [4, 4, 4, 4]
    assert len({c[1].seed for c in backend.calls}) == 4
    assert out.stop_reason == "max_n" and len(out.candidates) == 16 and out.cost.rounds == 4


def test_a_run_that_fails_mid_way_says_what_it_had_spent():
    votes = stream(*["7", "9"] * 8)

    def make(prompt, params, i):
        if len(backend.calls) > 2:
            raise BackendUnavailableError("the model server went away")
        return votes(prompt, params, i)

    backend = ScriptedBackend(make)
    with pytest.raises(BackendUnavailableError) as failed:
        AdaptiveSC(max_n=16, batch=4).run("q?", backend)
    # Two rounds of 4 samples came back before the third request failed: that is what the
    # budget books for this run when a middleware inside TTCMiddleware retries it.
    spent = failed.value.spent
    assert spent.rounds == 2 and spent.completion_tokens == 40 and spent.prompt_tokens == 20


def test_last_round_draws_only_what_max_n_leaves():
    backend = ScriptedBackend(stream(*["7", "9"] * 5))
    AdaptiveSC(max_n=10, batch=4).run("q?", backend)
    assert [c[1].n for c in backend.calls] == [4, 4, 2]


def test_growing_majority_stops_once_settled():
    # Round 1: 3-1 (0.81); round 2: 7-1 (0.98 >= 0.95).
    backend = ScriptedBackend(stream("7", "7", "9", "7", "7", "7", "7", "7"))
    out = AdaptiveSC(max_n=16, batch=4, threshold=0.95).run("q?", backend)
    assert out.cost.rounds == 2 and out.stop_reason == "converged" and out.answer == "7"


def test_deadline_mid_round_returns_the_answer_so_far_marked_cut():
    backend = ScriptedBackend(stream("7", "9", reason="deadline"))
    out = AdaptiveSC(max_n=16, batch=4).run("q?", backend, max_seconds=5)
    assert out.stop_reason == "cut" and out.cost.rounds == 1 and out.answer in ("7", "9")


def test_token_cap_cuts_rounds_short_with_exact_spend():
    backend = ScriptedBackend(stream(*["7", "9"] * 8))
    # Each round: 10 prompt tokens + 4 x 5 completion tokens = 30; 70 fits two rounds, not three.
    out = AdaptiveSC(max_n=16, batch=4, max_tokens=5).run("q?", backend, max_total_tokens=70)
    assert out.stop_reason == "cap" and out.cost.rounds == 2
    assert out.cost.total_tokens == 60 <= 70
    with pytest.raises(TokenBudgetError):
        AdaptiveSC(max_n=16, batch=4).run("q?", backend, max_total_tokens=12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_n": 4, "batch": 8}, r"batch must be an integer in \[1, 4\]"),
        ({"threshold": 0.5}, r"threshold must be a finite number in \(0.5, 1\)"),
        ({"threshold": 1.0}, r"threshold must be a finite number in \(0.5, 1\)"),
        ({"threshold": "high"}, "threshold"),
        ({"max_n": 0}, "max_n must be an integer >= 1"),
        ({"batch": True}, "batch must be an integer"),
        ({"temperature": 0.0}, "temperature > 0"),
    ],
)
def test_bad_adaptive_settings_are_refused(kwargs, match):
    with pytest.raises(InvalidRequestError, match=match):
        AdaptiveSC(**kwargs)


def test_spec_strings_round_trip():
    assert parse_strategy("adaptive_sc").spec == "adaptive_sc(max_n=16, batch=4, threshold=0.95)"
    assert parse_strategy("adaptive_sc(8, 2, 0.9)").spec == "adaptive_sc(max_n=8, batch=2, threshold=0.9)"
    spec = "best_of_n(8, select=confident_majority, keep=0.25)"
    assert parse_strategy(spec).spec == spec
    with pytest.raises(InvalidRequestError, match="keep"):
        parse_strategy("best_of_n(8, select=confident_majority, keep=0)")


def test_confidence_is_the_lowest_window_mean():
    values = [-0.1] * 40 + [-3.0] * 4 + [-0.1] * 40
    assert confidence(values, window=4) == pytest.approx(-3.0)
    assert confidence(values, window=8) == pytest.approx((-3.0 * 4 - 0.1 * 4) / 8)
    assert confidence([-1.0, -2.0], window=32) == pytest.approx(-1.5)
    assert confidence([]) == float("-inf")


def test_confident_majority_votes_among_the_most_confident():
    cands = [cand("9", -2.0), cand("9", -2.1), cand("9", -1.9), cand("7", -0.1), cand("7", -0.2)]
    assert [c.answer for c in most_confident(cands, 0.4)] == ["7", "7"]
    from ttc_agent.strategies.selection import select

    assert select(cands, "majority").answer == "9"
    assert select(cands, "confident_majority", keep=0.4).answer == "7"
    assert select(cands, "confident_majority", keep=1.0).answer == "9"


def test_confident_majority_fills_confidence_from_the_backends_logprobs():
    def make(prompt, params, i):
        lp = -0.1 if i < 2 else -2.0
        return Completion("= 7" if i < 2 else "= 9", "stop", 5, (lp,) * 5 if params.logprobs else None)

    out = BestOfN(5, select="confident_majority", keep=0.4).run("q?", ScriptedBackend(make))
    assert out.answer == "7" and [c.confidence for c in out.candidates][:3] == pytest.approx([-0.1, -0.1, -2.0])
    assert BestOfN(5, select="majority").run("q?", ScriptedBackend(make)).answer == "9"


def test_confidence_filtering_without_logprobs_names_the_backend():
    class NoLogprobs(ScriptedBackend):
        model_name = "server-without-logprobs"

    backend = NoLogprobs(lambda p, params, i: Completion("= 7", "stop", 5, None))
    with pytest.raises(LogprobsUnavailableError, match="NoLogprobs.*server-without-logprobs"):
        BestOfN(4, select="confident_majority").run("q?", backend)


def test_records_keep_confidence_and_stop_reason_for_replay():
    problem = Problem("p1", "What is 3 + 4?", "7", "arithmetic", 1, "first_result")

    def make(prompt, params, i):
        lp = -0.1 if i < 2 else -2.0
        return Completion("= 7" if i < 2 else "= 9", "stop", 5, (lp,) * 5 if params.logprobs else None)

    record = outcome_record(problem, BestOfN(5, select="majority").run(problem.question, ScriptedBackend(make)))
    assert record["correct"] is False and record["candidates"][0]["confidence"] == pytest.approx(-0.1)
    assert reselect(record, "confident_majority", keep=0.4) is True
    adaptive = outcome_record(problem, AdaptiveSC().run(problem.question, ScriptedBackend(stream("7"))))
    assert adaptive["stop_reason"] == "converged" and adaptive["rounds"] == 1


def test_deepconf_sets_its_floor_from_the_warmup_and_votes_among_confident_samples():
    # Warm-up: confidences -0.1, -0.2, -0.3, -1.0 (keep=0.75: floor at their 25% quantile).
    # Second round: three unsure "9"s (-2.0) and one sure "7" (-0.1); plain majority says 9.
    warm = [("7", -0.1), ("7", -0.2), ("8", -0.3), ("9", -1.0)]
    second = [("9", -2.0), ("9", -2.0), ("9", -2.0), ("7", -0.1)]
    seen = []

    def make(prompt, params, i):
        seen.append(params)
        answer, lp = (warm if params.min_confidence is None else second)[i]
        return Completion(f"= {answer}", "stop", 5, (lp,) * 5 if params.logprobs else None)

    out = DeepConf(n=8, warmup=4, keep=0.75).run("q?", ScriptedBackend(make))
    assert out.answer == "7" and out.cost.rounds == 2 and len(out.candidates) == 8
    floor = seen[-1].min_confidence
    assert -1.0 < floor < -0.3 and seen[-1].n == 4 and seen[-1].logprobs and seen[0].min_confidence is None
    assert out.stop_reason == "done"
    assert parse_strategy("deepconf(n=8, warmup=4, keep=0.75)").spec == "deepconf(n=8, warmup=4, keep=0.75)"


def test_deepconf_needs_logprobs_and_sane_settings():
    backend = ScriptedBackend(lambda p, params, i: Completion("= 7", "stop", 5, None))
    with pytest.raises(LogprobsUnavailableError, match="deepconf"):
        DeepConf(n=8, warmup=4).run("q?", backend)
    with pytest.raises(InvalidRequestError, match="warmup must be smaller than n=4"):
        DeepConf(n=4, warmup=4)
    with pytest.raises(InvalidRequestError, match="keep"):
        DeepConf(n=8, keep=0)
    with pytest.raises(InvalidRequestError, match="min_confidence needs logprobs"):
        from ttc_agent.backends.base import SamplingParams

        SamplingParams(min_confidence=-1.0)


@pytest.mark.slow
def test_adaptive_sc_and_confident_majority_on_the_embedded_model(tf_backend):
    out = AdaptiveSC(max_n=8, batch=4, max_tokens=24, seed=1).run("What is 2 + 2?", tf_backend)
    assert out.stop_reason in ("converged", "max_n") and len(out.candidates) == 4 * out.cost.rounds
    assert out.cost.completion_tokens == sum(c.num_tokens for c in out.candidates)
    bon = BestOfN(4, select="confident_majority", max_tokens=24, seed=1).run("What is 2 + 2?", tf_backend)
    assert all(c.confidence is not None and c.confidence <= 0 for c in bon.candidates)
