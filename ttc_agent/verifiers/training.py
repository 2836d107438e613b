"""Deprecated module: its contents moved to `ttc_agent.evaluation.verifier_training`."""

from ttc_agent.deprecation import moved

__getattr__ = moved(
    __name__,
    "ttc_agent.evaluation.verifier_training",
    (
        "VerifierReport",
        "train_verifier_from_traces",
    ),
)
