"""One validation layer for public constructors and settings, in the manner of scikit-learn's
parameter constraints: a constraint says what a parameter may be, and `check_param` words every
refusal the same way, as a typed error naming the parameter and the value.

Example:
    >>> check_param("n", 0, Interval(int, 1, None), owner="best_of_n")
    Traceback (most recent call last):
    ttc_agent.errors.InvalidRequestError: best_of_n: n must be an integer >= 1, got 0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, TypeVar

from ttc_agent.errors import InvalidRequestError

T = TypeVar("T")


@dataclass(frozen=True)
class Interval:
    """A finite number (``kind`` ``int`` or ``float``; booleans never count) between ``low`` and
    ``high`` (``None``: unbounded), with ``closed`` saying which ends are included."""

    kind: type[int] | type[float]
    low: float | None
    high: float | None
    closed: Literal["both", "left", "right", "neither"] = "both"

    def is_satisfied_by(self, value: object) -> bool:
        """True when ``value`` is a number of this kind inside the interval."""
        if isinstance(value, bool):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if not isinstance(value, int | float) or not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (value == self.low and self.closed in ("right", "neither"))):
            return False
        return not (
            self.high is not None and (value > self.high or (value == self.high and self.closed in ("left", "neither")))
        )

    def __str__(self) -> str:
        what = "an integer" if self.kind is int else "a finite number"
        if self.low is not None and self.high is not None:
            left = "[" if self.closed in ("both", "left") else "("
            right = "]" if self.closed in ("both", "right") else ")"
            return f"{what} in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{what} {'>=' if self.closed in ('both', 'left') else '>'} {self.low:g}"
        if self.high is not None:
            return f"{what} {'<=' if self.closed in ('both', 'right') else '<'} {self.high:g}"
        return what


#: Common constraints.
POSITIVE_INT = Interval(int, 1, None)
NON_NEGATIVE_INT = Interval(int, 0, None)
NON_NEGATIVE = Interval(float, 0, None)
POSITIVE = Interval(float, 0, None, closed="right")


def check_param(
    name: str,
    value: T,
    constraint: Interval,
    *,
    owner: str = "",
    allow_none: bool = False,
    error: type[InvalidRequestError] = InvalidRequestError,
) -> T:
    """Return ``value`` if it satisfies ``constraint`` (or is ``None`` and ``allow_none``);
    otherwise raise ``error`` as ``"{owner}: {name} must be {constraint}, got {value!r}"``."""
    if value is None and allow_none:
        return value
    if not constraint.is_satisfied_by(value):
        where = f"{owner}: " if owner else ""
        maybe_none = " or None" if allow_none else ""
        raise error(f"{where}{name} must be {constraint}{maybe_none}, got {value!r}")
    return value
