"""Deprecated module: its contents moved to `ttc_agent.strategies.menu`."""

from ttc_agent.deprecation import moved

__getattr__ = moved(__name__, "ttc_agent.strategies.menu", ("Menu",))
