"""Traced seconds from several machines, put on one machine's clock.

A trace folder collected across sessions can hold runs from machines of very different speed
(the same float32 engine sampled twice as many tokens per second on one 2-core machine as on
another). A seconds probe that reads only the question cannot tell the machines apart, so its
error would measure the machine mix, not the probe. `seconds_on_one_machine` rescales every
run's seconds to the machine that traced the most runs, per strategy, by the ratio of the two
machines' median seconds per completion token; the measured value is kept as
``traced_seconds``. Records name their machine in ``cpu`` (written by `collect` since the
field was added; older records count as one machine, ``"unrecorded"``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from ttc_agent.errors import InvalidRequestError

UNRECORDED = "unrecorded"


def machine_of(record: dict[str, Any]) -> str:
    """The machine a record was traced on (its ``cpu``), or ``"unrecorded"``."""
    return str(record.get("cpu") or UNRECORDED)


def traced_seconds(record: dict[str, Any]) -> float:
    """The seconds a run measured on its own machine (before any rescaling)."""
    return float(record.get("traced_seconds", record["seconds"]))


def _median_rate(records: Sequence[dict[str, Any]]) -> float | None:
    """Median traced seconds per completion token over records that spent both, or ``None``."""
    rates = [
        traced_seconds(r) / r["completion_tokens"]
        for r in records
        if traced_seconds(r) > 0 and r["completion_tokens"] > 0
    ]
    return float(np.median(rates)) if rates else None


def reference_machine(records: Sequence[dict[str, Any]]) -> str:
    """The machine that traced the most records (the clock `seconds_on_one_machine` uses)."""
    return Counter(machine_of(r) for r in records).most_common(1)[0][0] if records else UNRECORDED


def seconds_factors(records: Sequence[dict[str, Any]], reference: str | None = None) -> dict[tuple[str, str], float]:
    """Per (machine, strategy), the factor that puts its seconds on ``reference``'s clock
    (default: the machine with the most records). A strategy the reference never ran takes
    the median of that machine's other factors; a machine sharing no strategy keeps its seconds."""
    machines = Counter(machine_of(r) for r in records)
    if reference is not None and records and reference not in machines:
        raise InvalidRequestError(
            f"no record was traced on {reference!r}; the records' machines are {sorted(machines)}"
        )
    if len(machines) < 2:
        return {}
    ref = reference if reference is not None else reference_machine(records)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(machine_of(r), r["strategy"])].append(r)
    rates = {key: _median_rate(runs) for key, runs in groups.items()}
    factors: dict[tuple[str, str], float] = {}
    for machine in machines:
        if machine == ref:
            continue
        mine = {s: rate for (m, s), rate in rates.items() if m == machine}
        shared = {s: ref_rate / rate for s, rate in mine.items() if rate and (ref_rate := rates.get((ref, s)))}
        fallback = float(np.median(list(shared.values()))) if shared else 1.0
        for s in mine:
            factors[(machine, s)] = shared.get(s, fallback)
    return factors


def seconds_on_one_machine(records: Sequence[dict[str, Any]], reference: str | None = None) -> list[dict[str, Any]]:
    """The records with their seconds on one machine's clock (see `seconds_factors`); copies
    where rescaled, with the measured seconds kept as ``traced_seconds``, so applying it twice
    changes nothing. Records of a single machine come back unchanged."""
    factors = seconds_factors(records, reference)
    out: list[dict[str, Any]] = []
    for r in records:
        factor = factors.get((machine_of(r), r["strategy"]))
        if factor is None:
            out.append(r)
        else:
            out.append({**r, "seconds": traced_seconds(r) * factor, "traced_seconds": traced_seconds(r)})
    return out


def seconds_clock(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """For a results file: the machine whose clock the seconds are on, how many runs each
    machine traced, and the factor applied per other machine and strategy (rounded)."""
    return {
        "reference": reference_machine(records),
        "runs_by_machine": dict(Counter(machine_of(r) for r in records)),
        "factors": {f"{m} | {s}": round(f, 3) for (m, s), f in seconds_factors(records).items()},
    }
