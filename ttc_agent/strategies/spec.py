"""Strategy spec strings, as the CLI and config files write them.

Grammar: ``NAME`` or ``NAME(ARG, ..., KEY=VALUE, ...)`` where NAME is ``greedy``,
``best_of_n`` (alias ``bon``), ``beam`` (alias ``beam_search``), ``adaptive_sc``, ``deepconf`` or
``two_stage``; values are
integers, floats or bare words. Examples: ``greedy``, ``best_of_n(8, select=majority)``,
``best_of_n(16, select=weighted_majority, verifier=logprob)``,
``best_of_n(8, select=confident_majority, keep=0.5)``, ``beam(width=4, expand=4)``,
``adaptive_sc(max_n=16, batch=4, threshold=0.95)``, ``deepconf(n=16, warmup=4, keep=0.9)``,
``two_stage(k=4, more=12, temperature=0.3)``.
"""

from __future__ import annotations

import re
from typing import Any

from ttc_agent.errors import InvalidRequestError
from ttc_agent.strategies.adaptive import AdaptiveSC
from ttc_agent.strategies.base import Strategy
from ttc_agent.strategies.beam_search import BeamSearch
from ttc_agent.strategies.best_of_n import BestOfN
from ttc_agent.strategies.deepconf import DeepConf
from ttc_agent.strategies.greedy import Greedy
from ttc_agent.strategies.two_stage import TwoStage

_FACTORIES: dict[str, tuple[type[Strategy], tuple[str, ...]]] = {
    "greedy": (Greedy, ()),
    "best_of_n": (BestOfN, ("n", "select")),
    "bon": (BestOfN, ("n", "select")),
    "beam": (BeamSearch, ("width", "expand", "max_steps")),
    "beam_search": (BeamSearch, ("width", "expand", "max_steps")),
    "adaptive_sc": (AdaptiveSC, ("max_n", "batch", "threshold")),
    "deepconf": (DeepConf, ("n", "warmup", "keep")),
    "two_stage": (TwoStage, ("k", "more")),
}
#: The longest spec string accepted (the longest real one is under 150 characters).
MAX_SPEC_LENGTH = 400
_SPEC = re.compile(r"^\s*([a-z_]+)\s*(?:\((.*)\))?\s*$", re.DOTALL)
_KEY = re.compile(r"^[a-z_]+$")


def parse_strategy(spec: str, **defaults: Any) -> Strategy:
    """Build a strategy from a spec string; ``defaults`` (e.g. ``max_tokens=128``) fill the rest.

    Raises `InvalidRequestError` naming the part of the spec that is wrong.
    """
    if not isinstance(spec, str):
        raise InvalidRequestError(f"a strategy spec must be a string, got {spec!r}")
    if len(spec) > MAX_SPEC_LENGTH:
        raise InvalidRequestError(
            f"a strategy spec of {len(spec)} characters is longer than {MAX_SPEC_LENGTH}: {spec[:60]!r}..."
        )
    m = _SPEC.match(spec)
    if not m:
        raise InvalidRequestError(f"cannot parse strategy spec {spec!r}; expected e.g. 'best_of_n(8, select=majority)'")
    name, body = m.group(1), m.group(2)
    if name not in _FACTORIES:
        raise InvalidRequestError(f"unknown strategy {name!r} in {spec!r}; expected one of {sorted(_FACTORIES)}")
    cls, positional = _FACTORIES[name]
    kwargs: dict[str, Any] = dict(defaults)
    args = [a.strip() for a in body.split(",")] if body and body.strip() else []
    seen_keyword = False
    for i, arg in enumerate(args):
        if not arg:
            raise InvalidRequestError(f"empty argument {i + 1} in strategy spec {spec!r}")
        if "=" in arg:
            key, _, raw = (part.strip() for part in arg.partition("="))
            if not _KEY.match(key):
                raise InvalidRequestError(f"bad argument name {key!r} in strategy spec {spec!r}")
            seen_keyword = True
        else:
            if seen_keyword:
                raise InvalidRequestError(f"positional argument {arg!r} after a keyword in strategy spec {spec!r}")
            if i >= len(positional):
                raise InvalidRequestError(f"too many positional arguments in {spec!r}; {name} takes {list(positional)}")
            key, raw = positional[i], arg
        if not raw:
            raise InvalidRequestError(f"argument {key!r} has no value in strategy spec {spec!r}")
        kwargs[key] = _value(raw)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise InvalidRequestError(f"bad arguments in strategy spec {spec!r}: {exc}") from exc


def _value(raw: str) -> Any:
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    return raw.strip("'\"")
