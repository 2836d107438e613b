"""Deprecated module: its contents moved to `ttc_agent.evaluation.probe_training`."""

from ttc_agent.deprecation import moved

__getattr__ = moved(
    __name__,
    "ttc_agent.evaluation.probe_training",
    (
        "Trained",
        "train_from_traces",
        "cross_fit",
    ),
)
