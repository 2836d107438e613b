"""`TTCNode`: a LangGraph node that answers the conversation with the strategy the policy picks."""

# No `from __future__ import annotations` here: LangGraph injects `config` into a node by
# its annotation, which must be the real `RunnableConfig | None`, not a string.
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import ensure_config

from ttc_agent.backends.base import Backend
from ttc_agent.budgets.budget import BudgetError, BudgetExhaustedError, Grant, WorkflowBudget
from ttc_agent.budgets.expected import CallHistory
from ttc_agent.budgets.gate import BudgetGate, CallPlan
from ttc_agent.budgets.ledger import LEDGER_KEY, RUN_KEY, charge, current_run, ledger_of
from ttc_agent.budgets.managers import BudgetManager
from ttc_agent.budgets.pool import ReservationPool
from ttc_agent.errors import InvalidRequestError
from ttc_agent.evaluation.menu import Menu
from ttc_agent.nodes import tools as tooling
from ttc_agent.policy import CallLimits, Decision, UtilityPolicy
from ttc_agent.probes.bundle import ProbeBundle, ProbeMismatchError
from ttc_agent.records import DecisionRecord, FeaturesRecord
from ttc_agent.strategies import Cost, Outcome, Query, Strategy
from ttc_agent.tracing import JsonlTraceSink, aemit, decision_record, emit, features_digest
from ttc_agent.validation import NON_NEGATIVE, POSITIVE, check_param
from ttc_agent.verifiers import VerifierLike, as_verifier

SETTINGS = (
    "lambda_tokens",
    "lambda_seconds",
    "target_mean_tokens",
    "target_mean_seconds",
    "max_tokens",
    "max_seconds",
    "quantile",
)
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}
#: Calibrated prices a node remembers (one per target and other price in use).
_MAX_CALIBRATIONS = 256


def to_chat(messages: Sequence[BaseMessage | Mapping[str, Any]]) -> list[dict[str, str]]:
    """LangChain messages (or role/content dicts) as the backend's chat messages; past tool
    calls are written in the model's tool-call format, tool results as ``tool`` turns."""
    out = []
    for i, m in enumerate(messages):
        if isinstance(m, BaseMessage):
            role = _ROLES.get(m.type)
            if role is None:
                raise InvalidRequestError(f"message {i} has type {m.type!r}, which the backend cannot read")
            content = str(m.text)
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
    """A LangGraph context schema carrying per-run ttc settings (the keys of `SETTINGS`) and
    an optional workflow budget for the run (a `WorkflowBudget` or a mapping of its fields).

    Example:
        >>> graph = StateGraph(MessagesState, context_schema=TTCContext)
        >>> app.invoke(inputs, context=TTCContext(ttc={"lambda_tokens": 1e-3}, budget=WorkflowBudget(max_tokens=2000)))

    Any context object with ``ttc`` / ``budget`` attributes or keys works the same way.
    """

    ttc: dict[str, Any] = field(default_factory=dict)
    budget: WorkflowBudget | None = None


def _context_value(key: str) -> Any:
    """``key`` of the current LangGraph run's context, if there is one."""
    from langgraph.runtime import get_runtime

    try:
        runtime = get_runtime()
    except (RuntimeError, KeyError):  # not inside a graph run (KeyError: inside a runnable that is not one)
        return None
    context = getattr(runtime, "context", None)
    if context is None:
        return None
    return context.get(key) if isinstance(context, Mapping) else getattr(context, key, None)


class Reply(NamedTuple):
    """A node's answer: the message, its decision record, and the state update to write
    (the message, plus the budget ledger increment and run id when a budget is active)."""

    message: AIMessage
    record: DecisionRecord
    update: dict[str, Any]


@dataclass(frozen=True)
class _Prepared:
    chat: list[dict[str, str]]
    prompt_tokens: int
    decision: Decision
    features: FeaturesRecord
    tool_names: tuple[str, ...] = ()
    prefix: str = ""
    plan: CallPlan | None = None
    grant: Grant = Grant()


class TTCNode:
    """Answers the last turn of ``state["messages"]`` with test-time compute chosen per call.

    It featurises the conversation, asks the probes for every menu strategy's accuracy, tokens
    and seconds, lets the policy choose under this run's prices and caps, runs the strategy, and
    returns an `AIMessage` with the decision in ``response_metadata["ttc"]`` and the exact
    usage in ``usage_metadata``. Use the instance as a node of any graph whose state has a
    ``messages`` key (``MessagesState`` included); in async graphs, add ``node.acall``.

    Per-run settings come from ``config["configurable"]["ttc"]``: ``lambda_tokens``,
    ``lambda_seconds``, or ``target_mean_tokens`` / ``target_mean_seconds`` (turned into a
    lambda by calibrating on the bundle's training predictions), the per-call caps
    ``max_tokens`` and ``max_seconds``, and ``quantile``, the quantile of a strategy's predicted
    cost the caps are checked at (0.9 by default; under a budget, the budget's own
    ``quantile`` applies). Unknown keys and bad values raise before any generation.

    Args:
        backend: the backend that generates (shared by every thread of the graph).
        probes: a fitted `ProbeBundle`; its menu is the node's menu.
        menu: if given, must equal the bundle's menu (checked).
        verifier: overrides the strategies' verifier (a name, function or `Verifier`).
        policy: default prices and caps (``UtilityPolicy()``: accuracy only).
        trace: a JSONL file (or `JsonlTraceSink`) receiving every decision record.
        name: the node's name in records.
        budget: a `WorkflowBudget` for every run (a run's context may carry its own).
        manager: the budget manager, ``"paced"`` (default), ``"equal"`` or a `BudgetManager`.
        history: learns the calls a run still makes when the budget does not say.
        pool: where concurrent calls reserve their caps (the process-wide pool by default).
    """

    def __init__(
        self,
        backend: Backend,
        probes: ProbeBundle,
        menu: Menu | None = None,
        *,
        verifier: VerifierLike = None,
        policy: UtilityPolicy | None = None,
        trace: str | Path | JsonlTraceSink | None = None,
        name: str = "ttc",
        budget: WorkflowBudget | Mapping[str, Any] | None = None,
        manager: str | BudgetManager = "paced",
        history: CallHistory | None = None,
        pool: ReservationPool | None = None,
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
        self.budget = WorkflowBudget.coerce(budget)
        self.gate = BudgetGate(manager, pool, history)
        self._calibrated: dict[tuple[str, float, float], float] = {}

    # -- settings --------------------------------------------------------------------------

    def limits(self, config: RunnableConfig | None) -> CallLimits:
        """This call's prices and caps: the policy's, overridden by ``configurable["ttc"]``,
        overridden in turn by the run's context (``context=TTCContext(ttc={...})``)."""
        configured = ((config or {}).get("configurable") or {}).get("ttc") or {}
        from_context = _context_value("ttc") or {}
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
            for k in ("lambda_tokens", "lambda_seconds", "max_tokens", "max_seconds", "quantile")
        }
        targets = {k: settings[k] for k in ("target_mean_tokens", "target_mean_seconds") if settings.get(k) is not None}
        if len(targets) > 1:
            raise InvalidRequestError("give target_mean_tokens or target_mean_seconds, not both")
        limits = CallLimits(**values)
        if targets:
            ((key, target),) = targets.items()
            check_param(key, target, POSITIVE)
            limits = self._calibrate(limits, key, float(target))
        return limits

    def _calibrate(self, limits: CallLimits, key: str, target: float) -> CallLimits:
        if self.probes.calibration_ is None:
            raise InvalidRequestError(
                f"{key} needs calibration data, and this probe bundle has none; set lambdas instead"
            )
        # A target sets one price; the best value of that price depends on the other one, so
        # both belong to the cache key, and only the calibrated price is replaced.
        price = "lambda_tokens" if key == "target_mean_tokens" else "lambda_seconds"
        other = limits.lambda_seconds if price == "lambda_tokens" else limits.lambda_tokens
        if (key, target, other) not in self._calibrated:
            if len(self._calibrated) >= _MAX_CALIBRATIONS:
                self._calibrated.pop(next(iter(self._calibrated)))
            policy = UtilityPolicy(limits.lambda_tokens, limits.lambda_seconds)
            found = (
                policy.calibrate(self.probes.calibration_, target_mean_tokens=target)
                if price == "lambda_tokens"
                else policy.calibrate(self.probes.calibration_, target_mean_seconds=target)
            ).limits
            self._calibrated[(key, target, other)] = getattr(found, price)
        return replace(limits, **{price: self._calibrated[(key, target, other)]})

    def budget_for_run(self) -> WorkflowBudget | None:
        """The run's budget: the context's, else the node's."""
        return WorkflowBudget.coerce(_context_value("budget")) or self.budget

    # -- the node ------------------------------------------------------------------------------

    def _prepare(
        self,
        messages: Sequence[Any],
        config: RunnableConfig | None,
        tools: Sequence[Any],
        tool_choice: Any,
        state: Any,
        grant: Grant,
    ) -> _Prepared:
        if not messages:
            raise InvalidRequestError("there are no messages to answer")
        chat = to_chat(messages)
        limits = self.limits(config)
        budget = self.budget_for_run()
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
        pred = self.probes.predict_features(X, np.array([prompt_tokens], dtype=float))
        # A step that may call tools never uses beam search.
        allowed = [not s.startswith("beam") for s in self.menu.specs] if specs else None
        plan = None
        if budget is None:
            decision = self.policy.decide(pred, limits, allowed)[0]
        else:
            _check_ledger_channel(state)
            ledger = ledger_of(state)
            configurable = (config or {}).get("configurable") or {}
            steps = state.get("remaining_steps") if isinstance(state, Mapping) else None
            plan = self.gate.plan(
                budget,
                ledger,
                run=current_run(state, ledger, config),
                thread=str(configurable.get("thread_id", "")),
                node=self.name,
                predictions=pred,
                decide=lambda lim: self.policy.decide(pred, lim, allowed)[0],
                user_limits=limits,
                calibration=self.probes.calibration_,
                remaining_steps=steps if isinstance(steps, int) else None,
                grant=grant,
            )
            decision = plan.decision
        return _Prepared(
            chat,
            prompt_tokens,
            decision,
            features_digest(X[0]),
            tuple(s.name for s in specs),
            prefix,
            plan,
            grant,
        )

    def _run_args(self, p: _Prepared) -> tuple[Strategy, Query, dict[str, Any]]:
        strategy = self.menu.strategy(p.decision.spec)
        users = [m["content"] for m in p.chat if m["role"] == "user"]
        question = users[-1] if users else p.chat[-1]["content"]
        if p.tool_names:
            prompt = [*p.chat, {"role": "assistant", "content": p.prefix}] if p.prefix else p.chat
            query = Query(prompt=prompt, question=question, extract=tooling.extractor(p.tool_names, p.prefix))
        else:
            query = Query(prompt=p.chat, question=question)
        if p.plan is None:
            return strategy, query, {"max_seconds": p.decision.limits.max_seconds}
        return strategy, query, {"max_seconds": p.plan.max_seconds(), "max_total_tokens": p.plan.max_total_tokens}

    def _finish(self, p: _Prepared, outcome: Outcome, state: Any) -> Reply:
        record = decision_record(self.name, p.decision, outcome, p.features, p.prompt_tokens)
        update: dict[str, Any] = {}
        if p.plan is not None:
            increment, record["budget"] = self.gate.settle(p.plan, outcome.cost, p.grant)
            self.gate.observe(p.plan.run, ledger_of(state), self.name)
            update = {LEDGER_KEY: increment, RUN_KEY: p.plan.run}
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
        return Reply(message, record, {"messages": [message], **update})

    def _failed(self, p: _Prepared) -> None:
        """A call that raised still spent: charge its seconds and reserved tokens to the pool."""
        if p.plan is not None:
            self.gate.settle(p.plan, None, p.grant)

    def answer(
        self,
        messages: Sequence[Any],
        config: RunnableConfig | None = None,
        tools: Sequence[Any] = (),
        tool_choice: Any = None,
        *,
        state: Any = None,
        grant: Grant = Grant(),
    ) -> Reply:
        """Answer ``messages``: the reply, its decision record (also written to the sink) and
        the state update to return from a node.

        With ``tools`` the reply may be a tool call (see `ttc_agent.nodes.tools`): best-of-N
        votes over normalised calls, beam search is not used, and ``tool_choice`` ("any",
        "required" or a tool's name) forces a call. Under a workflow budget, ``state`` is the
        graph state holding the ledger, and `BudgetExhaustedError` is raised when not even the
        cheapest strategy fits (`respond` turns that into the budget's ``on_exhausted``).
        """
        config = config if config is not None else ensure_config()
        p = self._prepare(messages, config, tools, tool_choice, state or {}, grant)
        strategy, query, kwargs = self._run_args(p)
        try:
            outcome = strategy.run(query, self.backend, self.verifier, **kwargs)
        except BaseException:
            self._failed(p)
            raise
        return self._finish(p, outcome, state or {})

    async def aanswer(
        self,
        messages: Sequence[Any],
        config: RunnableConfig | None = None,
        tools: Sequence[Any] = (),
        tool_choice: Any = None,
        *,
        state: Any = None,
        grant: Grant = Grant(),
    ) -> Reply:
        """Async `answer`."""
        config = config if config is not None else ensure_config()
        p = self._prepare(messages, config, tools, tool_choice, state or {}, grant)
        strategy, query, kwargs = self._run_args(p)
        try:
            outcome = await strategy.arun(query, self.backend, self.verifier, **kwargs)
        except BaseException:
            self._failed(p)
            raise
        return self._finish(p, outcome, state or {})

    def _exhausted_reply(
        self, exc: BudgetExhaustedError, state: Any, config: RunnableConfig | None, grant: Grant
    ) -> Reply:
        """The budget's ``on_exhausted="end"``: a message naming the limit, and the ledger marked."""
        budget = self._required_budget()
        ledger = ledger_of(state)
        run = current_run(state, ledger, config)
        ex = exc.exhausted
        record: DecisionRecord = {
            "time": time.time(),
            "node": self.name,
            "choice": None,
            "feasible": False,
            "answer": None,
            "actual": Cost().as_dict(),
            "exhausted": ex.as_dict(),
        }
        message = AIMessage(ex.message, response_metadata={"ttc": record})
        increment = charge(
            budget.digest,
            run,
            self.name,
            calls=0,
            granted_tokens=grant.tokens,
            granted_seconds=grant.seconds,
            exhausted=ex.limit,
        )
        if self.sink is not None:
            self.sink.write(record)
        return Reply(message, record, {"messages": [message], LEDGER_KEY: increment, RUN_KEY: run})

    def _required_budget(self) -> WorkflowBudget:
        budget = self.budget_for_run()
        if budget is None:  # only reached after a budgeted call ran out
            raise BudgetError("no workflow budget is active for this run")
        return budget

    def _on_exhausted(self, exc: BudgetExhaustedError, grant: Grant) -> Grant | None:
        """``"error"`` re-raises; ``"ask"`` interrupts and returns the grown grant (``None``: stop)."""
        budget = self._required_budget()
        if budget.on_exhausted == "error":
            raise exc
        if budget.on_exhausted == "end":
            return None
        from langgraph.types import interrupt

        answer = interrupt({"ttc_budget_exhausted": exc.exhausted.as_dict()})
        more = parse_grant(answer)
        return None if more is None else grant + more

    def respond(
        self,
        messages: Sequence[Any],
        state: Any = None,
        config: RunnableConfig | None = None,
        tools: Sequence[Any] = (),
        tool_choice: Any = None,
    ) -> Reply:
        """`answer`, with the budget's exhaustion behaviour applied: ``"end"`` replies with a
        message naming the limit and marks the ledger (route on `budget_exhausted`),
        ``"error"`` raises `BudgetExhaustedError`, ``"ask"`` interrupts for more budget."""
        config = config if config is not None else ensure_config()
        grant: Grant = Grant()
        while True:
            try:
                return self.answer(messages, config, tools, tool_choice, state=state, grant=grant)
            except BudgetExhaustedError as exc:
                more = self._on_exhausted(exc, grant)
                if more is None:
                    return self._exhausted_reply(exc, state or {}, config, grant)
                grant = more

    async def arespond(
        self,
        messages: Sequence[Any],
        state: Any = None,
        config: RunnableConfig | None = None,
        tools: Sequence[Any] = (),
        tool_choice: Any = None,
    ) -> Reply:
        """Async `respond`."""
        config = config if config is not None else ensure_config()
        grant: Grant = Grant()
        while True:
            try:
                return await self.aanswer(messages, config, tools, tool_choice, state=state, grant=grant)
            except BudgetExhaustedError as exc:
                more = self._on_exhausted(exc, grant)
                if more is None:
                    return self._exhausted_reply(exc, state or {}, config, grant)
                grant = more

    def __call__(self, state: Any, config: RunnableConfig | None = None) -> dict[str, Any]:
        reply = self.respond(_messages(state), state, config)
        emit(reply.record, config)
        return reply.update

    async def acall(self, state: Any, config: RunnableConfig | None = None) -> dict[str, Any]:
        """The node for async graphs (``graph.add_node("solve", node.acall)``)."""
        reply = await self.arespond(_messages(state), state, config)
        await aemit(reply.record, config)
        return reply.update


def _check_ledger_channel(state: Any) -> None:
    """A budgeted call whose graph drops the ledger would never see its earlier spend: when the
    conversation already holds a budgeted reply but the state has no ledger, say so."""
    if not isinstance(state, Mapping) or LEDGER_KEY in state:
        return
    earlier = state.get("messages") or ()
    if any(isinstance(m, AIMessage) and (m.response_metadata.get("ttc") or {}).get("budget") for m in earlier):
        raise BudgetError(
            f"the graph's state has no {LEDGER_KEY!r} channel, so the workflow budget cannot keep its spend: "
            "add ttc_agent.budgets.BudgetState to the state schema (class State(MessagesState, BudgetState))"
        )


def parse_grant(answer: object) -> Grant | None:
    """A person's answer to an exhausted budget: ``{"tokens": N, "seconds": S}`` grants more,
    ``None`` or ``False`` stops."""
    if answer is None or answer is False:
        return None
    if not isinstance(answer, Mapping) or set(answer) - {"tokens", "seconds"}:
        raise BudgetError(f"resume an exhausted budget with {{'tokens': N, 'seconds': S}} or False, got {answer!r}")
    tokens, seconds = answer.get("tokens", 0), answer.get("seconds", 0.0)
    for name, value in (("tokens", tokens), ("seconds", seconds)):
        check_param(name, value, NON_NEGATIVE, owner="a budget grant", error=BudgetError)
    if not tokens and not seconds:
        return None
    return Grant(int(tokens), float(seconds))


def _messages(state: Any) -> Sequence[Any]:
    messages = state.get("messages") if isinstance(state, Mapping) else getattr(state, "messages", None)
    if not messages:
        raise InvalidRequestError("the state has no messages to answer")
    return list(messages)
