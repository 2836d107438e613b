"""`TTCNode`: a LangGraph node that answers the conversation with the strategy the policy picks."""

# No `from __future__ import annotations` here: LangGraph injects `config` into a node by
# its annotation, which must be the real `RunnableConfig | None`, not a string.
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.runnables import RunnableConfig

from ttc_agent.errors import InvalidRequestError
from ttc_agent.evaluation.menu import Menu
from ttc_agent.nodes import tools as tooling
from ttc_agent.policy import CallLimits, Decision, UtilityPolicy
from ttc_agent.probes.bundle import ProbeBundle, ProbeMismatchError
from ttc_agent.strategies import Outcome, Query
from ttc_agent.tracing import JsonlTraceSink, aemit, decision_record, emit, features_digest
from ttc_agent.verifiers import as_verifier

SETTINGS = ("lambda_tokens", "lambda_seconds", "target_mean_tokens", "target_mean_seconds", "max_tokens", "max_seconds")
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def to_chat(messages: Sequence[BaseMessage | Mapping[str, Any]]) -> list[dict[str, str]]:
    """LangChain messages (or role/content dicts) as the backend's chat messages; past tool
    calls are written in the model's tool-call format, tool results as ``tool`` turns."""
    out = []
    for i, m in enumerate(messages):
        if isinstance(m, BaseMessage):
            role = _ROLES.get(m.type)
            if role is None:
                raise InvalidRequestError(f"message {i} has type {m.type!r}, which the backend cannot read")
            content = m.text
            if isinstance(m, AIMessage) and m.tool_calls:
                content += "".join(tooling.render_call(c["name"], c["args"]) for c in m.tool_calls)
            elif isinstance(m, ToolMessage):
                content = f"{m.name or 'tool'} returned: {content}"
            out.append({"role": role, "content": content})
        elif isinstance(m, Mapping) and "role" in m and "content" in m:
            out.append({"role": str(m["role"]), "content": str(m["content"])})
        else:
            raise InvalidRequestError(f"message {i} is not a chat message: {m!r}")
    return out


@dataclass
class TTCContext:
    """A LangGraph context schema carrying per-run ttc settings (the keys of `SETTINGS`).

    Example:
        >>> graph = StateGraph(MessagesState, context_schema=TTCContext)
        >>> app.invoke(inputs, context=TTCContext(ttc={"lambda_tokens": 1e-3}))

    Any context object with a ``ttc`` attribute or key works the same way.
    """

    ttc: dict[str, Any] = field(default_factory=dict)


def _context_settings() -> Any:
    """The ``ttc`` settings of the current LangGraph run's context, if there are any."""
    from langgraph.runtime import get_runtime

    try:
        runtime = get_runtime()
    except RuntimeError:  # not inside a graph run
        return {}
    context = getattr(runtime, "context", None)
    if context is None:
        return {}
    return (context.get("ttc") if isinstance(context, Mapping) else getattr(context, "ttc", None)) or {}


@dataclass(frozen=True)
class _Prepared:
    chat: list[dict[str, str]]
    prompt_tokens: int
    decision: Decision
    features: dict[str, Any]
    tool_names: tuple[str, ...] = ()
    prefix: str = ""


class TTCNode:
    """Answers the last turn of ``state["messages"]`` with test-time compute chosen per call.

    It featurises the conversation, asks the probes for every menu strategy's accuracy, tokens
    and seconds, lets the policy choose under this run's prices and caps, runs the strategy, and
    returns an `AIMessage` with the decision in ``response_metadata["ttc"]`` and the exact
    usage in ``usage_metadata``. Use the instance as a node of any graph whose state has a
    ``messages`` key (``MessagesState`` included); in async graphs, add ``node.acall``.

    Per-run settings come from ``config["configurable"]["ttc"]``: ``lambda_tokens``,
    ``lambda_seconds``, or ``target_mean_tokens`` / ``target_mean_seconds`` (turned into a
    lambda by calibrating on the bundle's training predictions), and the per-call caps
    ``max_tokens`` and ``max_seconds``. Unknown keys and bad values raise before any generation.

    Args:
        backend: the backend that generates (shared by every thread of the graph).
        probes: a fitted `ProbeBundle`; its menu is the node's menu.
        menu: if given, must equal the bundle's menu (checked).
        verifier: overrides the strategies' verifier (a name, function or `Verifier`).
        policy: default prices and caps (``UtilityPolicy()``: accuracy only).
        trace: a JSONL file (or `JsonlTraceSink`) receiving every decision record.
        name: the node's name in records.
    """

    def __init__(
        self,
        backend: Any,
        probes: ProbeBundle,
        menu: Menu | None = None,
        *,
        verifier: Any = None,
        policy: UtilityPolicy | None = None,
        trace: str | Path | JsonlTraceSink | None = None,
        name: str = "ttc",
    ) -> None:
        if menu is not None and menu.to_dict() != probes.menu.to_dict():
            raise ProbeMismatchError(
                f"the probe bundle was trained for menu {list(probes.specs)}, not {list(menu.specs)}"
            )
        trained_on, serving = (probes.fingerprint or {}).get("weights"), backend.fingerprint().get("weights")
        if trained_on and serving and trained_on != serving:
            raise ProbeMismatchError(
                f"the probe bundle was trained on model {probes.fingerprint}, the backend serves {backend.fingerprint()}"
            )
        self.backend, self.probes, self.menu = backend, probes, probes.menu
        self.verifier = as_verifier(verifier)
        self.policy = policy or UtilityPolicy()
        self.sink = JsonlTraceSink(trace) if isinstance(trace, str | Path) else trace
        self.name = name
        self._calibrated: dict[tuple[str, float], CallLimits] = {}

    # -- settings --------------------------------------------------------------------------

    def limits(self, config: RunnableConfig | None) -> CallLimits:
        """This call's prices and caps: the policy's, overridden by ``configurable["ttc"]``,
        overridden in turn by the run's context (``context=TTCContext(ttc={...})``)."""
        configured = ((config or {}).get("configurable") or {}).get("ttc") or {}
        from_context = _context_settings()
        for where, value in (('configurable["ttc"]', configured), ("the context's ttc", from_context)):
            if not isinstance(value, Mapping):
                raise InvalidRequestError(f"{where} must be a mapping of settings, got {value!r}")
        settings = {**configured, **from_context}
        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown:
            raise InvalidRequestError(f"unknown ttc setting(s) {unknown}; expected some of {list(SETTINGS)}")
        base = self.policy.limits
        values = {
            k: settings.get(k, getattr(base, k))
            for k in ("lambda_tokens", "lambda_seconds", "max_tokens", "max_seconds")
        }
        targets = {k: settings[k] for k in ("target_mean_tokens", "target_mean_seconds") if settings.get(k) is not None}
        if len(targets) > 1:
            raise InvalidRequestError("give target_mean_tokens or target_mean_seconds, not both")
        limits = CallLimits(**values)
        if targets:
            ((key, target),) = targets.items()
            if (
                not isinstance(target, int | float)
                or isinstance(target, bool)
                or not math.isfinite(target)
                or target <= 0
            ):
                raise InvalidRequestError(f"{key} must be a finite number > 0, got {target!r}")
            limits = self._calibrate(limits, key, float(target))
        return limits

    def _calibrate(self, limits: CallLimits, key: str, target: float) -> CallLimits:
        if self.probes.calibration is None:
            raise InvalidRequestError(
                f"{key} needs calibration data, and this probe bundle has none; set lambdas instead"
            )
        if (key, target) not in self._calibrated:
            policy = UtilityPolicy(limits.lambda_tokens, limits.lambda_seconds)
            self._calibrated[(key, target)] = policy.calibrate(self.probes.calibration, **{key: target}).limits
        found = self._calibrated[(key, target)]
        return CallLimits(found.lambda_tokens, found.lambda_seconds, limits.max_tokens, limits.max_seconds)

    # -- the node ------------------------------------------------------------------------------

    def _prepare(
        self, messages: Sequence[Any], config: RunnableConfig | None, tools: Sequence[Any] = (), tool_choice: Any = None
    ) -> _Prepared:
        if not messages:
            raise InvalidRequestError("there are no messages to answer")
        chat = to_chat(messages)
        limits = self.limits(config)
        specs = tooling.tool_specs(tools) if tools else []
        prefix = tooling.forced_prefix(specs, tool_choice) if specs else ""
        if specs:
            text = tooling.instructions(specs)
            chat = (
                [{"role": "system", "content": chat[0]["content"] + "\n\n" + text}, *chat[1:]]
                if chat[0]["role"] == "system"
                else [{"role": "system", "content": text}, *chat]
            )
        prompt_tokens = self.backend.count_tokens(chat)
        context = getattr(self.backend, "context_length", None)
        if context is not None and prompt_tokens >= context:
            raise InvalidRequestError(
                f"the conversation has {prompt_tokens} tokens, more than the model's context of {context}"
            )
        X = self.probes.features.transform([chat])
        pred = self.probes.predict_features(X, [prompt_tokens])
        # A step that may call tools never uses beam search.
        allowed = [not s.startswith("beam") for s in self.menu.specs] if specs else None
        decision = self.policy.decide(pred, limits, allowed)[0]
        return _Prepared(chat, prompt_tokens, decision, features_digest(X[0]), tuple(s.name for s in specs), prefix)

    def _run_args(self, p: _Prepared) -> tuple[Any, Query, dict[str, Any]]:
        strategy = self.menu.strategy(p.decision.spec)
        users = [m["content"] for m in p.chat if m["role"] == "user"]
        question = users[-1] if users else p.chat[-1]["content"]
        if p.tool_names:
            prompt = [*p.chat, {"role": "assistant", "content": p.prefix}] if p.prefix else p.chat
            query = Query(prompt=prompt, question=question, extract=tooling.extractor(p.tool_names, p.prefix))
        else:
            query = Query(prompt=p.chat, question=question)
        return strategy, query, {"max_seconds": p.decision.limits.max_seconds}

    def _finish(self, p: _Prepared, outcome: Outcome) -> tuple[AIMessage, dict[str, Any]]:
        record = decision_record(self.name, p.decision, outcome, p.features, p.prompt_tokens)
        if self.sink is not None:
            self.sink.write(record)
        c = outcome.cost
        fields = (
            tooling.tool_call_message_fields(p.prefix + outcome.text, p.tool_names)
            if p.tool_names
            else {"content": outcome.text}
        )
        message = AIMessage(
            **fields,
            response_metadata={"ttc": record, "model_name": self.backend.model_name},
            usage_metadata={
                "input_tokens": c.prompt_tokens + c.verifier_tokens,
                "output_tokens": c.completion_tokens,
                "total_tokens": c.total_tokens,
            },
        )
        return message, record

    def answer(
        self,
        messages: Sequence[Any],
        config: RunnableConfig | None = None,
        tools: Sequence[Any] = (),
        tool_choice: Any = None,
    ) -> tuple[AIMessage, dict[str, Any]]:
        """Answer ``messages``: the reply and the decision record (also written to the sink).

        With ``tools`` the reply may be a tool call (see `ttc_agent.nodes.tools`): best-of-N
        votes over normalised calls, beam search is not used, and ``tool_choice`` ("any",
        "required" or a tool's name) forces a call.
        """
        p = self._prepare(messages, config, tools, tool_choice)
        strategy, query, kwargs = self._run_args(p)
        return self._finish(p, strategy.run(query, self.backend, self.verifier, **kwargs))

    async def aanswer(
        self,
        messages: Sequence[Any],
        config: RunnableConfig | None = None,
        tools: Sequence[Any] = (),
        tool_choice: Any = None,
    ) -> tuple[AIMessage, dict[str, Any]]:
        """Async `answer`."""
        p = self._prepare(messages, config, tools, tool_choice)
        strategy, query, kwargs = self._run_args(p)
        return self._finish(p, await strategy.arun(query, self.backend, self.verifier, **kwargs))

    def __call__(self, state: Any, config: RunnableConfig | None = None) -> dict[str, Any]:
        message, record = self.answer(_messages(state), config)
        emit(record, config)
        return {"messages": [message]}

    async def acall(self, state: Any, config: RunnableConfig | None = None) -> dict[str, Any]:
        """The node for async graphs (``graph.add_node("solve", node.acall)``)."""
        message, record = await self.aanswer(_messages(state), config)
        await aemit(record, config)
        return {"messages": [message]}


def _messages(state: Any) -> Sequence[Any]:
    messages = state.get("messages") if isinstance(state, Mapping) else getattr(state, "messages", None)
    if not messages:
        raise InvalidRequestError("the state has no messages to answer")
    return messages
