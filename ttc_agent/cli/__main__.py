"""``python -m ttc_agent.cli``: the same as the ``ttc-agent`` command."""

from ttc_agent.cli import app

app()
