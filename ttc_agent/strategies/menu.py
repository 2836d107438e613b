"""A menu: the strategies the policy may choose from, loaded from YAML or built in code.

.. code-block:: yaml

    defaults: {max_tokens: 64}
    strategies:
      - greedy
      - best_of_n(4, select=majority)
      - beam(width=2, expand=2, max_steps=4)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ttc_agent.errors import InvalidRequestError
from ttc_agent.strategies import Strategy, parse_strategy


@dataclass(frozen=True)
class Menu:
    """Strategy specs plus defaults shared by all of them (e.g. ``max_tokens``)."""

    specs: tuple[str, ...]
    defaults: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.specs:
            raise InvalidRequestError("a menu needs at least one strategy")
        canonical = tuple(self._written(s) for s in self.specs)
        if len(set(canonical)) != len(canonical):
            raise InvalidRequestError(f"the menu lists a strategy twice: {list(canonical)}")
        object.__setattr__(self, "specs", canonical)

    def strategies(self, seed: int | None = None) -> list[Strategy]:
        """Fresh strategy objects, sampling with ``seed`` when given."""
        extra = {} if seed is None else {"seed": seed}
        return [parse_strategy(s, **self.defaults, **extra) for s in self.specs]

    def canonical(self, spec: str) -> str:
        """``spec`` written as the menu writes its specs (defaults filled in, spacing normalised)."""
        return self._written(spec)

    def _written(self, spec: str) -> str:
        """The strategy's own spec, with its temperature spelled out where the menu's default
        temperature would otherwise read it as another (a spec leaves out the strategies'
        default temperature, 0.7, which a menu's ``temperature`` default replaces)."""
        strategy = parse_strategy(spec, **self.defaults)
        text, t = strategy.spec, strategy.sampling.temperature
        if parse_strategy(text, **self.defaults).sampling.temperature != t:
            text = f"{text[:-1]}, temperature={t:g})"
        return text

    def strategy(self, spec: str, seed: int | None = None) -> Strategy:
        """One strategy of the menu by its spec."""
        if spec not in self.specs:
            raise InvalidRequestError(f"{spec!r} is not on the menu {list(self.specs)}")
        return parse_strategy(spec, **self.defaults, **({} if seed is None else {"seed": seed}))

    def to_dict(self) -> dict[str, Any]:
        return {"strategies": list(self.specs), "defaults": dict(self.defaults)}

    @property
    def digest(self) -> str:
        """A short hash identifying this menu (specs and defaults)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Menu:
        if not isinstance(data, dict) or not isinstance(data.get("strategies"), list):
            raise InvalidRequestError(f"a menu needs a 'strategies' list, got {data!r}")
        defaults = data.get("defaults") or {}
        if not isinstance(defaults, dict):
            raise InvalidRequestError(f"menu 'defaults' must be a mapping, got {defaults!r}")
        return cls(tuple(str(s) for s in data["strategies"]), dict(defaults))

    @classmethod
    def load(cls, path: str | Path) -> Menu:
        """Read a menu from a YAML file."""
        p = Path(path)
        if not p.is_file():
            raise InvalidRequestError(f"no menu file at {str(p)!r}")
        try:
            return cls.from_dict(yaml.safe_load(p.read_text()))
        except yaml.YAMLError as exc:
            raise InvalidRequestError(f"{p} is not valid YAML: {exc}") from exc
