"""A strategy under ``max_total_tokens`` never spends more than the cap."""

import pytest
from fakes import ScriptedBackend, texts

from ttc_agent.strategies import TokenBudgetError, parse_strategy

# ScriptedBackend: every prompt reads 10 tokens; each sample wants 30 tokens.


@pytest.mark.parametrize(
    "spec,cap",
    [
        ("greedy", 25),
        ("best_of_n(8, select=majority)", 100),
        ("best_of_n(4, select=weighted_majority)", 70),
        ("beam(width=2, expand=2, max_steps=6)", 120),
    ],
)
def test_total_tokens_stay_within_the_cap(spec, cap):
    backend = ScriptedBackend(texts("The answer is 4.\n\nso 4", tokens=30))
    outcome = parse_strategy(spec).run("What is 2 + 2?", backend, max_total_tokens=cap)
    assert outcome.cost.total_tokens <= cap
    uncapped = parse_strategy(spec).run("What is 2 + 2?", ScriptedBackend(texts("4", tokens=30)))
    assert uncapped.cost.total_tokens > cap  # the cap really bound


def test_samples_are_shortened_to_share_the_room():
    backend = ScriptedBackend(texts("4", tokens=30))
    parse_strategy("best_of_n(8, select=majority)").run("What is 2 + 2?", backend, max_total_tokens=100)
    ((_, params),) = backend.calls
    assert params.max_tokens == (100 - 10) // 8


def test_beam_search_stops_when_the_next_round_cannot_fit():
    backend = ScriptedBackend(texts("step\n\n", tokens=5))
    outcome = parse_strategy("beam(width=2, expand=2, max_steps=8)").run("q", backend, max_total_tokens=80)
    assert outcome.cost.total_tokens <= 80
    assert 1 <= outcome.cost.rounds < 8
    assert outcome.text  # it still returns its best beam


def test_no_room_for_the_first_round_raises_before_generating():
    backend = ScriptedBackend(texts("4"))
    with pytest.raises(TokenBudgetError, match="max_total_tokens=15"):
        parse_strategy("best_of_n(8, select=majority)").run("q", backend, max_total_tokens=15)
    assert backend.calls == []


@pytest.mark.parametrize("cap", [0, -5, 2.5, True])
def test_bad_caps_are_rejected(cap):
    with pytest.raises(Exception, match="max_total_tokens"):
        parse_strategy("greedy").run("q", ScriptedBackend(texts("4")), max_total_tokens=cap)


async def test_async_run_respects_the_cap():
    backend = ScriptedBackend(texts("4", tokens=30))
    outcome = await parse_strategy("best_of_n(4, select=majority)").arun("q", backend, max_total_tokens=60)
    assert outcome.cost.total_tokens <= 60
