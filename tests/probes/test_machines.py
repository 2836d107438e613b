"""Traced seconds from several machines are put on one machine's clock before anything fits them."""

import pytest

from ttc_agent.errors import InvalidRequestError
from ttc_agent.probes import TraceTable
from ttc_agent.probes.machines import (
    seconds_clock,
    seconds_factors,
    seconds_on_one_machine,
)

MESSAGES = [{"role": "user", "content": "q"}]


def run(pid: str, strategy: str, tokens: int, seconds: float, cpu: str | None) -> dict:
    record = {
        "problem_id": pid,
        "strategy": strategy,
        "completion_tokens": tokens,
        "prompt_tokens": 10,
        "seconds": seconds,
        "correct": True,
        "messages": MESSAGES,
    }
    if cpu is not None:
        record["cpu"] = cpu
    return record


def two_machines() -> list[dict]:
    """Three questions on a fast machine, two on one twice (greedy) and three times (best-of-4)
    as slow per token, recorded before records named their machine."""
    fast = [run(f"f{i}", s, 100, 10.0 * k, "Fast CPU x2") for i in range(3) for s, k in (("greedy", 1), ("bo4", 2))]
    slow = [run(f"s{i}", s, 100, 20.0 * k, None) for i in range(2) for s, k in (("greedy", 1), ("bo4", 3))]
    return fast + slow


def test_slow_machine_seconds_rescaled_per_strategy_to_the_machine_with_most_runs():
    out = seconds_on_one_machine(two_machines())
    slow = {r["strategy"]: r for r in out if r["problem_id"] == "s0"}
    assert slow["greedy"]["seconds"] == pytest.approx(10.0) and slow["greedy"]["traced_seconds"] == 20.0
    assert slow["bo4"]["seconds"] == pytest.approx(20.0) and slow["bo4"]["traced_seconds"] == 60.0
    fast = [r for r in out if r["problem_id"].startswith("f")]
    assert all("traced_seconds" not in r for r in fast)  # the reference clock's runs are untouched
    assert seconds_factors(two_machines()) == {
        ("unrecorded", "greedy"): 0.5,
        ("unrecorded", "bo4"): pytest.approx(1 / 3),
    }


def test_rescaling_is_idempotent_and_the_inputs_are_not_modified():
    records = two_machines()
    once = seconds_on_one_machine(records)
    twice = seconds_on_one_machine(once)
    assert [r["seconds"] for r in twice] == [r["seconds"] for r in once]
    assert [r["traced_seconds"] for r in twice if "traced_seconds" in r] == [20.0, 60.0, 20.0, 60.0]
    assert [r["seconds"] for r in records[-4:]] == [20.0, 60.0, 20.0, 60.0]


def test_one_machine_unchanged_and_a_strategy_the_reference_never_ran_takes_the_machines_median():
    single = [run("a", "greedy", 50, 5.0, "Only CPU x2")]
    assert seconds_on_one_machine(single) == single and seconds_factors(single) == {}
    records = two_machines() + [run("s0", "beam", 100, 40.0, None)]
    factors = seconds_factors(records)
    assert factors[("unrecorded", "beam")] == pytest.approx((0.5 + 1 / 3) / 2)


def test_an_explicit_reference_clock_and_an_unknown_one():
    out = seconds_on_one_machine(two_machines(), reference="unrecorded")
    fast = next(r for r in out if r["problem_id"] == "f0" and r["strategy"] == "greedy")
    assert fast["seconds"] == pytest.approx(20.0)
    with pytest.raises(InvalidRequestError, match="Other CPU.*Fast CPU x2"):
        seconds_factors(two_machines(), reference="Other CPU")


def test_trace_table_fits_seconds_on_one_clock_and_the_results_name_it():
    table = TraceTable.from_records(two_machines(), ("greedy", "bo4"))
    assert table.mean("greedy", "seconds").tolist() == pytest.approx([10.0] * 5)
    assert table.mean("bo4", "seconds").tolist() == pytest.approx([20.0] * 5)
    clock = seconds_clock(two_machines())
    assert clock["reference"] == "Fast CPU x2"
    assert clock["runs_by_machine"] == {"Fast CPU x2": 6, "unrecorded": 4}
    assert clock["factors"] == {"unrecorded | greedy": 0.5, "unrecorded | bo4": 0.333}
