"""The ``ttc-agent`` command line (``ttc-agent --help``): one module per group of commands,
registered in the order ``--help`` lists them."""

# isort: off
from ttc_agent.cli.common import app
from ttc_agent.cli import run, report, collection, training, serve

# isort: on

__all__ = ["app", "collection", "report", "run", "serve", "training"]
