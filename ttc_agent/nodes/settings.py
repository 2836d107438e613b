"""Per-run and per-call settings: typed, documented and checked where they come in.

`TTCSettings` holds one call's prices, caps, (optionally) a forced strategy and where replies
state their answers; `TTCContext`
adds the workflow budget and is the ``context_schema`` a graph passes to LangGraph, so Studio
renders it as a form. Settings arrive in layers (the policy's defaults, then
``config["configurable"]["ttc"]``, then the run's context, then a chat model call's ``ttc=``);
`merge` lays them over each other, later layers winning field by field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ttc_agent.budgets.budget import WorkflowBudget
from ttc_agent.deprecation import renamed_keys, warn_renamed
from ttc_agent.errors import InvalidRequestError
from ttc_agent.policy import CAP_RENAMES


class TTCSettings(BaseModel):
    """One call's settings. Every field is optional; unset fields keep the layer below.

    Example:
        >>> TTCSettings(target_mean_tokens=120, max_call_seconds=30)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    lambda_tokens: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, strict=True, description="Utility lost per token spent."
    )
    lambda_seconds: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, strict=True, description="Utility lost per second of latency."
    )
    target_mean_tokens: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, strict=True,
        description="Set lambda_tokens so the mean predicted tokens per call hit this.",
    )  # fmt: skip
    target_mean_seconds: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, strict=True,
        description="Set lambda_seconds so the mean predicted seconds hit this.",
    )  # fmt: skip
    max_call_tokens: int | None = Field(
        default=None, gt=0, strict=True,
        description="Per-call cap on predicted total tokens (at `quantile`); formerly `max_tokens` (deprecated).",
    )  # fmt: skip
    max_call_seconds: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, strict=True,
        description="Per-call cap on predicted seconds, and the call's deadline; formerly `max_seconds` (deprecated).",
    )  # fmt: skip
    max_tokens_per_sample: int | None = Field(
        default=None,
        gt=0,
        strict=True,
        description=(
            "Each sample's cap on generated tokens, which the strategies run with (and the probes predict "
            "under); overrides a chat model's or request's own max_tokens. Unset: the model's max_tokens, "
            "else the menu's cap."
        ),
    )
    quantile: float | None = Field(
        default=None, ge=0.5, lt=1, allow_inf_nan=False, strict=True,
        description="Quantile of predicted cost the caps are checked at, in [0.5, 1) (0.9 by default).",
    )  # fmt: skip
    strategy: str | None = Field(
        default=None,
        max_length=400,
        description="Force this menu strategy (a spec such as 'greedy') instead of choosing.",
    )
    answer_scope: Literal["all", "first_result"] | None = Field(
        default=None,
        description=(
            "Where a reply states its final answer, which votes read: 'all' (the last number of a "
            "worked solution; the default) or 'first_result' (the first number stated as a result, "
            "for short answers a model then chats on about)."
        ),
    )

    def __init__(self, **fields: Any) -> None:
        fields = renamed_keys(type(self).__name__, CAP_RENAMES, fields)
        try:
            super().__init__(**fields)
        except ValidationError as exc:
            raise InvalidRequestError(f"bad ttc setting: {_describe(exc)}") from None

    @property
    def max_tokens(self) -> int | None:
        """Deprecated name of ``max_call_tokens``."""
        warn_renamed(type(self).__name__, "max_tokens", "max_call_tokens")
        return self.max_call_tokens

    @property
    def max_seconds(self) -> float | None:
        """Deprecated name of ``max_call_seconds``."""
        warn_renamed(type(self).__name__, "max_seconds", "max_call_seconds")
        return self.max_call_seconds


class TTCContext(TTCSettings):
    """A LangGraph ``context_schema``: the run's settings and, optionally, its workflow budget.

    Example:
        >>> graph = StateGraph(MessagesState, context_schema=TTCContext)
        >>> app.invoke(inputs, context=TTCContext(lambda_tokens=1e-3, budget=WorkflowBudget(max_tokens=2000)))
    """

    budget: WorkflowBudget | None = Field(default=None, description="What the whole workflow may spend.")


def parse_settings(value: object, where: str) -> TTCSettings:
    """``value`` (settings, a mapping of them, or ``None``) as `TTCSettings`; a bad field or
    value raises `InvalidRequestError` naming ``where`` it came from and the field."""
    if value is None:
        return TTCSettings()
    if isinstance(value, TTCSettings):
        return value
    if not isinstance(value, Mapping):
        raise InvalidRequestError(f"{where} must be a mapping of ttc settings, got {value!r}")
    try:
        return TTCSettings(**{str(k): v for k, v in value.items()})
    except InvalidRequestError as exc:
        raise InvalidRequestError(f"{where}: {exc}") from None


def parse_context(value: object) -> tuple[TTCSettings, WorkflowBudget | None]:
    """A run's context as its settings and budget: a `TTCContext`, a mapping of its fields, any
    object with those attributes, or ``None``."""
    if value is None:
        return TTCSettings(), None
    if isinstance(value, TTCContext):
        return value, value.budget
    if isinstance(value, Mapping):
        fields = {k: v for k, v in value.items() if k in TTCContext.model_fields or k in CAP_RENAMES}
    else:  # another context schema that carries some of the fields
        names = (*TTCContext.model_fields, *CAP_RENAMES)
        fields = {k: getattr(value, k) for k in names if getattr(value, k, None) is not None}
    budget = WorkflowBudget.coerce(fields.pop("budget", None))
    return parse_settings(fields, "the run's context"), budget


def sample_cap(settings: TTCSettings, model_max_tokens: int | None = None) -> int | None:
    """The per-sample token cap a call runs with: the run's ``max_tokens_per_sample`` setting,
    else the chat model's (or request's) ``max_tokens``; ``None`` leaves the menu's cap."""
    return settings.max_tokens_per_sample if settings.max_tokens_per_sample is not None else model_max_tokens


def merge(*layers: TTCSettings) -> TTCSettings:
    """The layers laid over each other: a field set in a later layer wins."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer.model_dump(exclude_unset=True, exclude={"budget"}))
    return TTCSettings(**merged)


def _describe(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        field = ".".join(str(p) for p in e["loc"]) or "settings"
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown setting {field!r}; expected some of {sorted(TTCSettings.model_fields)}")
        elif e["type"] == "value_error":  # our own check, already worded
            parts.append(str(e["ctx"]["error"]))
        else:
            parts.append(f"{field}={e.get('input')!r}: {e['msg']}")
    return "; ".join(parts)


def run_settings(config: Mapping[str, Any] | None, context: object) -> tuple[TTCSettings, WorkflowBudget | None]:
    """The settings and budget of a graph run: ``config["configurable"]["ttc"]`` overridden by
    the run's context (`TTCContext`)."""
    configured = parse_settings(((config or {}).get("configurable") or {}).get("ttc"), 'configurable["ttc"]')
    from_context, budget = parse_context(context)
    return merge(configured, from_context), budget


def current_context() -> object:
    """The context of the LangGraph run this code runs in (``None`` outside a graph)."""
    from langgraph.runtime import get_runtime

    try:
        runtime = get_runtime()
    except (RuntimeError, KeyError):  # not inside a graph run (KeyError: inside a runnable that is not one)
        return None
    return getattr(runtime, "context", None)
