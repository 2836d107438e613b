"""Strategies: control flow on a scripted backend, and real runs on the embedded model."""

import asyncio
import math

import pytest
from fakes import ScriptedBackend, texts

from ttc_agent.backends.base import Completion
from ttc_agent.errors import InvalidRequestError
from ttc_agent.evaluation.datasets import arithmetic
from ttc_agent.strategies import BeamSearch, BestOfN, Greedy, parse_strategy
from ttc_agent.verifiers import VerifierError


def test_best_of_n_is_one_request_and_majority_wins():
    backend = ScriptedBackend(texts("= 7", "= 9", "= 7", "no idea"))
    out = BestOfN(8, select="majority").run("What is 3 + 4?", backend)
    assert len(backend.calls) == 1 and backend.calls[0][1].n == 8
    assert out.answer == "7" and len(out.candidates) == 8
    assert out.cost.completion_tokens == 40 and out.cost.prompt_tokens == 10 and out.cost.rounds == 1


def test_majority_tie_is_broken_by_score_and_verifier_selection_uses_it():
    backend = ScriptedBackend(texts("= 7", "= 9"))
    prefer_nine = lambda q, s: 1.0 if "9" in s else 0.1  # noqa: E731
    assert BestOfN(2, select="majority", verifier=prefer_nine).run("q?", backend).answer == "9"
    assert BestOfN(2, select="verifier", verifier=prefer_nine).run("q?", backend).answer == "9"
    # Weighted vote: three 7s at 0.1 (sum 0.3) lose to one 9 at 1.0.
    backend = ScriptedBackend(texts("= 7", "= 7", "= 7", "= 9"))
    assert BestOfN(4, select="weighted_majority", verifier=prefer_nine).run("q?", backend).answer == "9"
    assert BestOfN(4, select="majority", verifier=prefer_nine).run("q?", backend).answer == "7"


def test_no_extractable_answer_gives_an_explicit_no_answer_outcome():
    out = BestOfN(4, select="majority").run("q?", ScriptedBackend(texts("I am not sure.", "Hmm.")))
    assert out.answer is None and not out.has_answer and out.text in ("I am not sure.", "Hmm.")


@pytest.mark.parametrize("bad", [math.nan, float("inf"), "high"])
def test_verifier_returning_nan_or_garbage_raises_typed_error(bad):
    with pytest.raises(VerifierError, match="candidate 0"):
        BestOfN(2, select="verifier", verifier=lambda q, s: bad).run("q?", ScriptedBackend(texts("= 1")))


def test_verifier_that_raises_is_reported_with_its_candidate():
    def broken(q, s):
        raise RuntimeError("judge offline")

    with pytest.raises(VerifierError, match="judge offline"):
        BestOfN(2, select="verifier", verifier=broken).run("q?", ScriptedBackend(texts("= 1")))


def test_weighted_vote_refuses_negative_scores():
    with pytest.raises(VerifierError, match=">= 0"):
        BestOfN(2, select="weighted_majority", verifier=lambda q, s: -1.0).run("q?", ScriptedBackend(texts("= 1")))


def test_logprob_verifier_is_default_and_asks_for_logprobs():
    backend = ScriptedBackend(texts("= 7"))
    out = BestOfN(2, select="verifier").run("q?", backend)
    assert backend.calls[0][1].logprobs is True
    assert out.candidates[0].score == pytest.approx(math.exp(-0.5))
    assert out.cost.verifier_tokens == 0


def beam_backend():
    """Each sample writes one step; the third step of a beam ends the turn."""

    def make(prompt, params, i):
        partial = prompt.messages[-1]["content"] if prompt.continues_assistant else ""
        steps = partial.count("\n\n")
        if steps >= 2:
            return Completion(f"so = {i}", "stop", 4, (-0.1,) * 4 if params.logprobs else None)
        return Completion(f"step{steps}-{i}", "stop", 3, (-0.2,) * 3 if params.logprobs else None, stop_string="\n\n")

    return ScriptedBackend(make)


def test_beam_search_rounds_batching_and_pruning():
    backend = beam_backend()
    scorer = lambda q, s: float(s.count("-1")) + 0.01 * len(s)  # noqa: E731
    out = BeamSearch(width=2, expand=3, max_steps=5, seed=10).run("q?", backend, verifier=scorer)
    first, second = backend.calls[0], backend.calls[1]
    assert first[1].n == 6 and len(first[0]) == 1, "round 1 samples width*expand first steps in one request"
    assert second[1].n == 3 and len(second[0]) == 2, "later rounds expand each of the width beams"
    assert all(p.continues_assistant for p in second[0])
    assert [call[1].seed for call in backend.calls] == [10, 11, 12], "each round draws fresh noise"
    assert out.cost.rounds == len(backend.calls) == 3
    assert out.text.startswith("step0-1\n\nstep1-1\n\nso = ")
    assert len(out.candidates) >= 2 and out.candidates[0].score >= out.candidates[-1].score
    assert out.cost.completion_tokens == 6 * 3 + 6 * 3 + 6 * 4


def test_beam_search_never_passes_max_tokens():
    def make(prompt, params, i):
        n = params.max_tokens
        return Completion("x" * n, "length", n, None)

    backend = ScriptedBackend(make)
    out = BeamSearch(width=2, expand=2, max_steps=10, max_step_tokens=30, max_tokens=70).run(
        "q?", backend, verifier=lambda q, s: 0.5
    )
    assert all(c.num_tokens <= 70 for c in out.candidates)
    assert [call[1].max_tokens for call in backend.calls] == [30, 30, 10]


def test_run_caps_tokens_and_passes_deadline():
    backend = ScriptedBackend(texts("= 1"))
    Greedy(max_tokens=200).run("q?", backend, max_tokens=50, max_seconds=2.0)
    params = backend.calls[0][1]
    assert params.max_tokens == 50 and 0 < params.max_seconds <= 2.0


def test_async_run_matches_sync():
    backend = ScriptedBackend(texts("= 7", "= 9", "= 7"))
    sync = BestOfN(3).run("q?", backend)
    async_ = asyncio.run(BestOfN(3).arun("q?", backend))
    assert (sync.answer, sync.cost.completion_tokens) == (async_.answer, async_.cost.completion_tokens)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("greedy", "greedy"),
        ("best_of_n(8, select=majority)", "best_of_n(8, select=majority)"),
        (
            "bon(n=4, select=weighted_majority, verifier=logprob)",
            "best_of_n(4, select=weighted_majority, verifier=logprob)",
        ),
        ("beam(width=4, expand=4)", "beam(width=4, expand=4, max_steps=8)"),
        ("beam(2, 3, 5)", "beam(width=2, expand=3, max_steps=5)"),
        ("beam(2, 3, 5, max_step_tokens=64)", "beam(width=2, expand=3, max_steps=5, max_step_tokens=64)"),
        ("beam(2, 3, 5, max_step_tokens=96)", "beam(width=2, expand=3, max_steps=5)"),
    ],
)
def test_spec_round_trips(spec, expected):
    s = parse_strategy(spec)
    assert s.spec == expected
    assert parse_strategy(s.spec).spec == expected


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("best_of_n(0)", "n must be an integer >= 1, got 0"),
        ("best_of_n(8, select=vibes)", "vibes"),
        ("beam(width=0)", "width"),
        ("beam(expand=-2)", "expand"),
        ("sampling(4)", "sampling"),
        ("best_of_n(8", "cannot parse"),
        ("best_of_n(select=majority, 8)", "positional"),
        ("best_of_n(8, colour=red)", "colour"),
        ("greedy(3)", "too many"),
        ("best_of_n(8, verifier=psychic)", "psychic"),
        ("best_of_n(8, temperature=0)", "temperature"),
    ],
)
def test_bad_specs_raise_clear_errors(spec, needle):
    with pytest.raises((InvalidRequestError, VerifierError), match=needle):
        parse_strategy(spec)


# -- real model ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec",
    [
        "greedy",
        "best_of_n(4, select=majority)",
        "best_of_n(4, select=weighted_majority)",
        "beam(width=2, expand=2, max_steps=3)",
    ],
)
def test_strategies_on_the_embedded_model(tf_backend, spec):
    problem = arithmetic(per_level=1, levels=(1,), seed=11)[0]
    out = parse_strategy(spec, max_tokens=48, seed=0).run(problem, tf_backend)
    assert out.text and out.cost.completion_tokens > 0 and out.cost.seconds > 0
    assert out.cost.prompt_tokens >= tf_backend.count_tokens(problem.messages())
    assert all(c.num_tokens <= 48 for c in out.candidates)
    if spec.startswith("best_of_n"):
        assert len(out.candidates) == 4 and out.cost.rounds == 1
        assert all(c.score is not None and 0 < c.score <= 1 for c in out.candidates)
        assert out.cost.completion_tokens == sum(c.num_tokens for c in out.candidates)
    if out.answer is not None:
        assert out.answer == problem.extract(out.text)


@pytest.mark.slow
def test_judge_verifier_counts_its_tokens(tf_backend):
    out = parse_strategy("best_of_n(2, select=verifier, verifier=judge)", max_tokens=24, seed=1).run(
        "What is 2 + 2?", tf_backend
    )
    assert out.cost.verifier_tokens > 2 * 30, "the judge read both prompts"
    assert all(0 <= c.score <= 1 for c in out.candidates)
    assert 0 < out.cost.verifier_seconds < out.cost.seconds


@pytest.mark.slow
def test_beam_search_continues_partial_turns_on_the_real_model(tf_backend):
    out = BeamSearch(width=2, expand=2, max_steps=2, max_step_tokens=16, max_tokens=40, seed=3).run(
        "List three prime numbers, one per paragraph.", tf_backend
    )
    assert 1 <= out.cost.rounds <= 2
    assert all(c.num_tokens <= 40 for c in out.candidates)


def test_a_spec_carries_its_temperature_and_a_menu_may_set_one_for_its_sampling_strategies():
    from ttc_agent.strategies import parse_strategy
    from ttc_agent.strategies.menu import Menu

    spec = parse_strategy("best_of_n(8, select=majority, temperature=0.4)")
    assert spec.spec == "best_of_n(8, select=majority, temperature=0.4)" and spec.sampling.temperature == 0.4
    assert parse_strategy("best_of_n(8, select=majority, temperature=0.7)").spec == "best_of_n(8, select=majority)"
    for text in ("adaptive_sc(max_n=8, batch=4, threshold=0.9, temperature=0.3)", "deepconf(n=8, warmup=4, keep=0.5, temperature=1)",
                 "beam(width=2, expand=2, max_steps=4, temperature=0.5)"):  # fmt: skip
        assert parse_strategy(text).spec == text
    menu = Menu(("greedy", "best_of_n(4, select=majority)", "best_of_n(4, select=majority, temperature=0.7)"),
                {"temperature": 0.3})  # fmt: skip
    # The strategies' default temperature (0.7), left out of a spec, is spelled out where the
    # menu's default would read the spec as another: each spec keeps its own temperature.
    assert menu.specs == ("greedy", "best_of_n(4, select=majority, temperature=0.3)",
                          "best_of_n(4, select=majority, temperature=0.7)")  # fmt: skip
    assert [menu.strategy(s).sampling.temperature for s in menu.specs] == [0.0, 0.3, 0.7]
    assert Menu.from_dict(menu.to_dict()).specs == menu.specs
    assert menu.canonical("best_of_n(4, select=majority,temperature=0.7)") == menu.specs[2]


@pytest.mark.parametrize("value", [2.5, -0.1, float("nan"), "hot"])
def test_a_temperature_outside_0_to_2_is_refused(value):
    from ttc_agent.strategies import parse_strategy

    with pytest.raises(InvalidRequestError, match="temperature"):
        parse_strategy("best_of_n(4, select=majority)", temperature=value)
