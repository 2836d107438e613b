"""Old names that keep working: renamed dataclass fields and settings, with a `DeprecationWarning`.

A renamed field is still accepted as a keyword argument (so objects saved under the old name,
such as a ledger in a LangGraph checkpoint, load) and still readable as an attribute.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def warn_renamed(owner: str, old: str, new: str, stacklevel: int = 3) -> None:
    """Warn that ``owner``'s ``old`` name is deprecated in favour of ``new``."""
    warnings.warn(f"{owner}: {old!r} is deprecated, use {new!r}", DeprecationWarning, stacklevel=stacklevel)


def renamed_keys(owner: str, renames: Mapping[str, str], values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with every old key under its new name (warning once per old key used);
    giving both names of one field is refused with a `TypeError` naming both."""
    out = dict(values)
    for old, new in renames.items():
        if old in out:
            if new in out:
                raise TypeError(f"{owner}: give {new!r} or its deprecated name {old!r}, not both")
            warn_renamed(owner, old, new, stacklevel=4)
            out[new] = out.pop(old)
    return out


def renamed_fields(renames: Mapping[str, str]) -> Callable[[type[T]], type[T]]:
    """Class decorator for a dataclass whose fields ``renames`` (old -> new) were renamed: the
    old names still work as keyword arguments and attributes, with a `DeprecationWarning`."""

    def decorate(cls: type[T]) -> type[T]:
        init = cls.__init__

        @functools.wraps(init)
        def __init__(self: T, *args: Any, **kwargs: Any) -> None:
            init(self, *args, **renamed_keys(cls.__name__, renames, kwargs))

        setattr(cls, "__init__", __init__)  # noqa: B010 (mypy refuses assigning to a method)
        for old, new in renames.items():
            setattr(cls, old, _alias(cls.__name__, old, new))
        return cls

    return decorate


def _alias(owner: str, old: str, new: str) -> property:
    def get(self: object) -> Any:
        warn_renamed(owner, old, new)
        return getattr(self, new)

    return property(get, doc=f"Deprecated name of ``{new}``.")


def moved(old_module: str, new_module: str, names: tuple[str, ...]) -> Callable[[str], object]:
    """A module ``__getattr__`` for a module whose contents moved: ``names`` still import from
    ``old_module``, with a `DeprecationWarning` naming ``new_module``."""

    def __getattr__(name: str) -> object:
        if name not in names:
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        warn_renamed(old_module, name, f"{new_module}.{name}")
        return getattr(importlib.import_module(new_module), name)

    return __getattr__
