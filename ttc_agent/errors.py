"""Typed errors raised by ttc-agent. Every one names the value that caused it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ttc_agent.costs import Cost


class TTCError(Exception):
    """Base class of every error ttc-agent raises on purpose.

    Raised out of a strategy's run, ``spent`` holds what the run had spent by then, as the
    backend reported it (rounds that finished; ``None`` elsewhere)."""

    spent: Cost | None = None


class InvalidRequestError(TTCError, ValueError):
    """A generation request, strategy spec or setting has a bad value."""


class LogprobsUnavailableError(InvalidRequestError):
    """A strategy or verifier needs token logprobs (e.g. confidence filtering) and the backend
    or model gives none."""


class ModelLoadError(TTCError):
    """A model could not be found or loaded."""


class ModelIntegrityError(ModelLoadError):
    """A model's files are not the ones pinned or converted: wrong size or digest, or weights
    swapped after conversion."""


class BackendError(TTCError):
    """A backend failed to produce a generation."""


class BackendUnavailableError(BackendError):
    """A model server could not be reached, or kept failing until retries ran out."""


class BackendResponseError(BackendError):
    """A model server answered with something that is not a valid completion."""


class BackendTimeoutError(BackendError):
    """A generation did not finish within its time limit."""
