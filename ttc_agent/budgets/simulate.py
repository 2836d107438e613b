"""Deprecated module: its contents moved to `ttc_agent.evaluation.simulate`."""

from ttc_agent.deprecation import moved

__getattr__ = moved(
    __name__,
    "ttc_agent.evaluation.simulate",
    (
        "World",
        "draw_world",
        "Result",
        "run_manager",
        "run_static",
        "run_adaptive",
        "run_oracle",
        "simulate",
        "plot_simulation",
    ),
)
