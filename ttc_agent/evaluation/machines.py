"""Deprecated module: its contents moved to `ttc_agent.probes.machines`."""

from ttc_agent.deprecation import moved

__getattr__ = moved(
    __name__,
    "ttc_agent.probes.machines",
    (
        "UNRECORDED",
        "machine_of",
        "traced_seconds",
        "reference_machine",
        "seconds_factors",
        "seconds_on_one_machine",
        "seconds_clock",
    ),
)
