"""`TTCEngine`: the one decision every face of ttc-agent shares.

A call goes through four steps, each a method here: `prompt` (the conversation as the model
sees it), `decide` (probes, policy and, under a workflow budget, the budget gate; `admit` adds
the budget's ``on_exhausted`` behaviour), `run` / `arun` (the chosen strategy, the only step
that does I/O), and `finish` / `settle` (the reply, its decision record, the ledger update).
`TTCChatModel` runs a decided call; `TTCNode` and `TTCMiddleware` decide with the graph's state
and hand the decided call to a chat model, so a middleware listed after them still sees it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple, TypedDict

import numpy as np
from cachetools import LRUCache
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

from ttc_agent.answers import Extractor
from ttc_agent.backends.base import Backend
from ttc_agent.backends.fingerprint import same_model
from ttc_agent.budgets.budget import BudgetError, BudgetExhaustedError, Grant, WorkflowBudget
from ttc_agent.budgets.expected import CallHistory
from ttc_agent.budgets.gate import BudgetGate, CallPlan
from ttc_agent.budgets.ledger import LEDGER_KEY, RUN_KEY, charge, current_run, ledger_of
from ttc_agent.budgets.managers import BudgetManager
from ttc_agent.budgets.store import BudgetStore
from ttc_agent.errors import InvalidRequestError, TTCError
from ttc_agent.nodes.messages import ChatPrompt, MessageLike, ToolChoice, chat_prompt
from ttc_agent.nodes.settings import TTCSettings
from ttc_agent.policy import CallLimits, Decision, UtilityPolicy
from ttc_agent.probes.bundle import ProbeBundle, ProbeMismatchError
from ttc_agent.records import CapRecord, DecisionRecord, FeaturesRecord, NoveltyRecord
from ttc_agent.strategies import Cost, Outcome, Query, Strategy, TokenBudgetError, TwoStage
from ttc_agent.strategies.menu import Menu
from ttc_agent.tracing import JsonlTraceSink, decision_record, features_digest, publish
from ttc_agent.validation import NON_NEGATIVE, check_param
from ttc_agent.verifiers import VerifierLike, as_verifier

#: Calibrated prices an engine remembers (one per target and other price in use).
_MAX_CALIBRATIONS = 256
_LIMIT_FIELDS = ("lambda_tokens", "lambda_seconds", "max_call_tokens", "max_call_seconds", "quantile")
_log = logging.getLogger("ttc_agent")
#: Replies an engine looks back over, and the share of them cut by length that it warns about.
_CUT_WINDOW, _CUT_SHARE = 20, 0.3
#: (traced cap, asked cap) pairs already warned about in this process.
_warned_caps: set[tuple[int, int]] = set()
_warned_lock = threading.Lock()


@dataclass(frozen=True)
class Call:
    """One request: the conversation, the tools the reply may call, the caller's stop strings,
    the call's settings, and two constraints a chat model's own parameters set:
    ``deterministic`` (temperature 0: only strategies that decode greedily) and
    ``max_tokens`` (each sample's cap on generated tokens: the strategies run with it in place
    of the menu's cap, which is only the default for a call that gives none); ``excluded``
    names strategies not to use (ones that failed, and dearer ones)."""

    messages: Sequence[MessageLike]
    tools: Sequence[Any] = ()
    tool_choice: ToolChoice = None
    stop: tuple[str, ...] = ()
    settings: TTCSettings = TTCSettings()
    deterministic: bool = False
    max_tokens: int | None = None
    excluded: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Ticket:
    """A decided call: the decision, the prompt it was decided on (counted and checked), and
    under a workflow budget the plan it runs under and the extra allowance a person granted
    after the budget ran out."""

    decision: Decision
    features: FeaturesRecord
    prompt: ChatPrompt
    cap: CapRecord | None = None
    ood: NoveltyRecord | None = None
    plan: CallPlan | None = None
    grant: Grant = Grant()
    #: Every run of this decided call so far: one, unless a middleware inside `TTCMiddleware`
    #: ran the model again (a retry, say); later runs get only what earlier ones left.
    runs: list[TicketRun] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: object, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        """A field holding a ticket (`TTCChatModel.ticket`) checks only that it is one."""
        return core_schema.is_instance_schema(cls)

    def run_limits(self) -> tuple[float | None, int | None]:
        """The call's deadline in seconds and its cap on total tokens, less what earlier runs of
        the same ticket spent.

        Raises:
            TokenBudgetError: earlier runs spent the whole cap.
        """
        if self.plan is None:
            return self.decision.limits.max_call_seconds, None
        cap = self.plan.max_total_tokens
        if cap is not None and self.runs:
            cap -= sum(run.total_tokens() for run in self.runs)
            if cap < 1:
                raise TokenBudgetError(
                    f"{self.decision.spec}: the call's {self.plan.max_total_tokens} tokens were spent by its "
                    f"{len(self.runs)} earlier run(s) (a middleware inside TTCMiddleware ran the model again)"
                )
        return self.plan.max_seconds(), cap

    def booked_tokens(self, message: AIMessage | None) -> int:
        """The tokens to book for this ticket (as its budget counts them) once the call ends.

        A call that ends in an error (``message`` is ``None``) is charged its reservation.
        One that ends with a reply is charged every run of the ticket (a middleware inside
        `TTCMiddleware` may have run the model more than once): what each reported, a run
        that raised what it had spent by then (its cap, where that is unknown), plus the
        usage of a reply no run of this ticket made (a fallback model's)."""
        if self.plan is None:
            raise BudgetError("only a call decided under a workflow budget books tokens")
        budget, reserved = self.plan.budget, self.plan.max_total_tokens or 0
        if message is None:
            return reserved
        ran = sum(budget.tokens_of(r.cost) if r.cost is not None else (r.cap or 0) for r in self.runs)
        record = message.response_metadata.get("ttc")
        if self.runs and record is not None and "actual" in record:  # the reply of one of the runs
            return ran
        usage = _cost_of(message)
        return ran + (budget.tokens_of(usage) if usage is not None else 0)


@dataclass(frozen=True)
class TicketRun:
    """One run of a decided call: what it spent (for one that raised, what it had spent by
    then; ``None`` where that is unknown) and the total-token cap it ran under."""

    cost: Cost | None
    cap: int | None

    def total_tokens(self) -> int:
        """What the run spent in total tokens; its cap where that is unknown."""
        return self.cost.total_tokens if self.cost is not None else (self.cap or 0)


def _spent_by(exc: BaseException) -> Cost | None:
    """What a run that raised ``exc`` had spent: the strategy records it on its own errors."""
    return exc.spent if isinstance(exc, TTCError) else None


class RunLimits(TypedDict):
    """The per-run limits a strategy takes: per-sample tokens, deadline, total-token cap."""

    max_tokens: int | None
    max_seconds: float | None
    max_total_tokens: int | None


class Reply(NamedTuple):
    """A face's answer: the message, its decision record, and the state update to write
    (the message, plus the budget ledger increment and run id when a budget is active)."""

    message: AIMessage
    record: DecisionRecord
    update: dict[str, Any]


class TTCEngine:
    """Chooses and runs the test-time compute of one LLM call; shared by every face.

    Args:
        backend: the backend that generates (shared by every thread of the graph).
        probes: a fitted `ProbeBundle`; its menu is the engine's menu.
        menu: if given, must equal the bundle's menu (checked).
        verifier: overrides the strategies' verifier (a name, function or `Verifier`).
        policy: default prices and caps (``UtilityPolicy()``: accuracy only).
        trace: a JSONL file (or `JsonlTraceSink`) receiving every decision record.
        name: the name in records, logs and spans.
        budget: a `WorkflowBudget` for every run (a run's context may carry its own).
        manager: the budget manager, ``"paced"`` (default), ``"equal"`` or a `BudgetManager`.
        history: learns the calls a run still makes when the budget does not say.
        pool: where concurrent calls reserve their caps (the process-wide pool by default).
        extract: reads a reply's answer for votes (text -> a canonical answer string), in place
            of the numeric reading, for another workload (text, code, multiple choice).
        record_prompts: also keep each call's chat messages in its decision record
            (``messages``), so ``ttc-agent collect --dataset LOG.jsonl`` can trace every strategy
            on the prompts your traffic sent. Off by default: prompts may hold what users typed.

    Example:
        >>> engine = TTCEngine(TransformersBackend(), ProbeBundle.load_default())
        >>> graph.add_node("solve", TTCNode(engine))
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
        pool: BudgetStore | None = None,
        extract: Extractor | None = None,
        record_prompts: bool = False,
    ) -> None:
        if menu is not None and menu.to_dict() != probes.menu.to_dict():
            raise ProbeMismatchError(
                f"the probe bundle was trained for menu {list(probes.specs)}, not {list(menu.specs)}"
            )
        if same_model(probes.fingerprint, backend.fingerprint()) is False:
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
        # Prices calibrated per (target kind, target, other price): the latest few, shared by threads.
        self._calibrated: LRUCache[tuple[str, float, float], float] = LRUCache(maxsize=_MAX_CALIBRATIONS)
        self._calibrating = threading.Lock()
        self.extract = extract
        self.record_prompts = record_prompts
        #: Whether each of the latest replies ended at the per-sample cap (for one warning).
        self._cut: deque[bool] = deque(maxlen=_CUT_WINDOW)
        self._warned_cut = False

    # -- settings ------------------------------------------------------------------------------

    def limits(self, settings: TTCSettings) -> CallLimits:
        """The call's prices and caps: the policy's, overridden by the settings given; a
        ``target_mean_*`` setting becomes the matching price by calibrating on the bundle."""
        base = self.policy.limits
        values = {k: v if (v := getattr(settings, k)) is not None else getattr(base, k) for k in _LIMIT_FIELDS}
        limits = CallLimits(**values)
        targets = {
            k: v for k in ("target_mean_tokens", "target_mean_seconds") if (v := getattr(settings, k)) is not None
        }
        if len(targets) > 1:
            raise InvalidRequestError("give target_mean_tokens or target_mean_seconds, not both")
        if targets:
            ((key, target),) = targets.items()
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
        with self._calibrating:
            lam = self._calibrated.get((key, target, other))
        if lam is None:
            policy = UtilityPolicy(limits.lambda_tokens, limits.lambda_seconds)
            found = (
                policy.calibrate(self.probes.calibration_, target_mean_tokens=target)
                if price == "lambda_tokens"
                else policy.calibrate(self.probes.calibration_, target_mean_seconds=target)
            ).limits
            lam = float(getattr(found, price))
            with self._calibrating:
                self._calibrated[(key, target, other)] = lam
        return replace(limits, **{price: lam})

    # -- deciding ------------------------------------------------------------------------------

    def prompt(self, call: Call, known: ChatPrompt | None = None) -> ChatPrompt:
        """The call's conversation as the model sees it (checked against the model's context).
        ``known``, a prompt already counted and checked (a decided call's), is returned when
        ``call`` makes the same one, so a decided call does not count its prompt again."""
        prompt = chat_prompt(call.messages, call.tools, call.tool_choice)
        if known is not None and replace(prompt, tokens=known.tokens) == known:
            return known
        tokens = self.backend.count_tokens(prompt.chat)
        context = getattr(self.backend, "context_length", None)
        if context is not None and tokens >= context:
            raise InvalidRequestError(
                f"the conversation has {tokens} tokens, more than the model's context of {context}"
            )
        return replace(prompt, tokens=tokens)

    def _allowed(self, call: Call, prompt: ChatPrompt) -> list[bool]:
        specs = self.menu.specs
        forced = call.settings.strategy
        if forced is not None and forced not in specs:
            canonical = self.menu.canonical(forced)
            if canonical not in specs:
                raise InvalidRequestError(f"strategy {forced!r} is not in the menu {list(specs)}")
            forced = canonical
        allowed = [(forced is None or s == forced) and s not in call.excluded for s in specs]
        if prompt.tool_names:  # a step that may call tools never uses beam search
            allowed = [a and not s.startswith("beam") for s, a in zip(specs, allowed, strict=True)]
        if call.deterministic:
            allowed = [a and self.menu.strategy(s).deterministic for s, a in zip(specs, allowed, strict=True)]
        if not any(allowed):
            raise InvalidRequestError(
                f"no strategy of the menu {list(specs)} can answer this call "
                f"(forced strategy {call.settings.strategy!r}, tools {list(prompt.tool_names)}, "
                f"deterministic {call.deterministic}, excluded {sorted(call.excluded)})"
            )
        return allowed

    def decide(
        self,
        call: Call,
        prompt: ChatPrompt,
        *,
        budget: WorkflowBudget | None = None,
        state: Mapping[str, Any] | None = None,
        config: RunnableConfig | None = None,
        grant: Grant = Grant(),
    ) -> Ticket:
        """Choose the strategy for ``call``. Under ``budget`` (whose spend so far is the ledger
        in ``state``), raises `BudgetExhaustedError` when not even the cheapest strategy fits."""
        limits = self.limits(call.settings)
        allowed = self._allowed(call, prompt)
        X = self.probes.features.transform([prompt.chat])
        pred = self.probes.predict_features(X, np.array([prompt.tokens], dtype=float), max_tokens=call.max_tokens)
        features = features_digest(X[0])
        ood = self.probes.novelty(X)
        if ood is not None and ood["novel"]:  # the accuracy probes extrapolate here: do not trust them
            pred = self.probes.untrusted(pred, prompt_tokens=np.array([prompt.tokens]), max_tokens=call.max_tokens)
        if budget is None:
            decision = self.policy.decide(pred, limits, allowed)[0]
            return Ticket(decision, features, prompt, self.cap_record(decision.spec, call.max_tokens), ood)
        state = state or {}
        _check_ledger_channel(state)
        ledger = ledger_of(state)
        steps = state.get("remaining_steps")
        plan = self.gate.plan(
            budget,
            ledger,
            run=current_run(state, ledger, config),
            thread=str(((config or {}).get("configurable") or {}).get("thread_id", "")),
            node=self.name,
            predictions=pred,
            decide=lambda lim: self.policy.decide(pred, lim, allowed)[0],
            user_limits=limits,
            calibration=self.probes.calibration_,
            remaining_steps=steps if isinstance(steps, int) else None,
            grant=grant,
        )
        cap = self.cap_record(plan.decision.spec, call.max_tokens)
        return Ticket(plan.decision, features, prompt, cap, ood, plan, grant)

    def cap_record(self, spec: str, max_tokens: int | None) -> CapRecord:
        """The per-sample cap strategy ``spec`` runs with for a call asking ``max_tokens`` (the
        menu's cap when it asks none) against the cap its traces were made at; the first call
        in the process asking beyond a traced cap logs a warning (its token and seconds
        predictions are extrapolated, `ttc_agent.probes.length_cap`)."""
        traced = self.probes.traced_max_tokens[self.menu.specs.index(spec)]
        in_force = traced if max_tokens is None else max_tokens
        if in_force > traced:
            with _warned_lock:
                first = (traced, in_force) not in _warned_caps
                _warned_caps.add((traced, in_force))
            if first:
                _log.warning(
                    "a call asks max_tokens=%d per sample, beyond the %d its probe bundle was traced at: its "
                    "token and seconds predictions are extrapolated; fit a bundle on traces at this cap "
                    "(ttc-agent collect, ttc-agent train)",
                    in_force,
                    traced,
                )
        return {"max_tokens": in_force, "traced_max_tokens": traced, "beyond_traced": in_force > traced}

    def admit(
        self,
        call: Call,
        prompt: ChatPrompt,
        *,
        budget: WorkflowBudget | None,
        state: Mapping[str, Any],
        config: RunnableConfig | None,
    ) -> Ticket | Reply:
        """`decide`, with the budget's ``on_exhausted`` applied when it runs out: ``"end"``
        returns the `Reply` naming the limit (the ledger marked), ``"error"`` raises
        `BudgetExhaustedError`, ``"ask"`` interrupts the graph for more and decides again."""
        grant = Grant()
        while True:
            try:
                return self.decide(call, prompt, budget=budget, state=state, config=config, grant=grant)
            except BudgetExhaustedError as exc:
                assert budget is not None  # only a budget runs out
                if budget.on_exhausted == "error":
                    raise
                more = None if budget.on_exhausted == "end" else _ask_for_more(exc)
                if more is None:
                    return self._exhausted_reply(exc, budget, state, config, grant)
                grant = grant + more

    # -- running -------------------------------------------------------------------------------

    def _strategy_call(self, ticket: Ticket, call: Call, prompt: ChatPrompt) -> tuple[Strategy, Query, RunLimits]:
        seconds, total = ticket.run_limits()
        limits: RunLimits = {"max_tokens": call.max_tokens, "max_seconds": seconds, "max_total_tokens": total}
        query = prompt.query(call.stop, call.settings.answer_scope or "all")
        if self.extract is not None and not prompt.tool_names:  # a tool call is read as one
            query = replace(query, extract=self.extract)
        strategy = self.menu.strategy(ticket.decision.spec)
        trusted = ticket.ood is None or not ticket.ood["novel"]  # out of distribution: the default rule
        if isinstance(strategy, TwoStage) and trusted:  # its second stage is decided at the call's prices
            prices = ticket.decision.limits
            continuation = self.probes.continuation(ticket.decision.spec, prices.lambda_tokens, prices.lambda_seconds)
            if continuation is not None:
                strategy = strategy.with_continuation(continuation)
        return strategy, query, limits

    def run(self, ticket: Ticket, call: Call, prompt: ChatPrompt) -> Outcome:
        """Run the ticket's strategy on ``prompt`` under its deadline and caps (less what
        earlier runs of the ticket spent); the run is recorded on the ticket."""
        strategy, query, limits = self._strategy_call(ticket, call, prompt)
        try:
            outcome = strategy.run(query, self.backend, self.verifier, **limits)
        except BaseException as exc:
            ticket.runs.append(TicketRun(_spent_by(exc), limits["max_total_tokens"]))
            raise
        ticket.runs.append(TicketRun(outcome.cost, limits["max_total_tokens"]))
        return outcome

    async def arun(self, ticket: Ticket, call: Call, prompt: ChatPrompt) -> Outcome:
        """Async `run`."""
        strategy, query, limits = self._strategy_call(ticket, call, prompt)
        try:
            outcome = await strategy.arun(query, self.backend, self.verifier, **limits)
        except BaseException as exc:
            ticket.runs.append(TicketRun(_spent_by(exc), limits["max_total_tokens"]))
            raise
        ticket.runs.append(TicketRun(outcome.cost, limits["max_total_tokens"]))
        return outcome

    def finish(self, ticket: Ticket, prompt: ChatPrompt, outcome: Outcome) -> AIMessage:
        """The reply message: the chosen text (or tool call), the decision record in
        ``response_metadata["ttc"]`` and the exact usage in ``usage_metadata``."""
        record = decision_record(self.name, ticket.decision, outcome, ticket.features, ticket.prompt.tokens)
        c, reason = outcome.cost, finish_reason(outcome)
        record["finish_reason"] = reason
        record["cut_by_length"] = sum(k.finish_reason == "length" for k in outcome.candidates)
        self._note_cut(reason == "length", ticket.cap)
        if ticket.cap is not None:
            record["cap"] = ticket.cap
        if ticket.ood is not None:
            record["ood"] = ticket.ood
        if self.record_prompts:
            record["messages"] = [dict(m) for m in prompt.chat]
        return AIMessage(
            **prompt.message_fields(outcome.text, complete=reason == "stop"),
            response_metadata={
                "ttc": record,
                "model_name": self.backend.model_name,
                "model_provider": "ttc-agent",
                "finish_reason": reason,
            },
            usage_metadata={
                "input_tokens": c.prompt_tokens + c.verifier_tokens,
                "output_tokens": c.completion_tokens,
                "total_tokens": c.total_tokens,
                "input_token_details": {},
                "output_token_details": {},
            },
        )

    def _note_cut(self, cut: bool, cap: CapRecord | None) -> None:
        """Warn once when many of the latest replies ended at the per-sample cap."""
        self._cut.append(cut)
        many = len(self._cut) >= _CUT_WINDOW // 2 and sum(self._cut) >= _CUT_SHARE * len(self._cut)
        if many and not self._warned_cut:
            self._warned_cut = True
            _log.warning(
                "%d of the latest %d replies of %s ended at the per-sample cap (max_tokens=%s): raise max_tokens "
                "(max_tokens_per_sample), or they answer with half a sentence",
                sum(self._cut),
                len(self._cut),
                self.name,
                None if cap is None else cap["max_tokens"],
            )

    def release(self, ticket: Ticket) -> None:
        """Give back a decided call's reservation without booking anything: the call never ran."""
        if ticket.plan is not None:
            self.gate.pool.release(ticket.plan.reservation)

    def settle(self, ticket: Ticket, message: AIMessage | None, state: Mapping[str, Any]) -> dict[str, Any]:
        """Book a decided call and publish its record: ``message`` is the reply (``None``: the
        call failed, and its seconds and reserved tokens are charged). Returns the state update
        (the ledger increment and run id; empty without a budget)."""
        record: DecisionRecord | None = message.response_metadata.get("ttc") if message is not None else None
        if ticket.plan is None:
            if record is not None:
                publish(record, self.sink)
            return {}
        increment, booked = self.gate.settle(ticket.plan, ticket.booked_tokens(message), ticket.grant)
        self.gate.observe(ticket.plan.run, ledger_of(state), self.name)
        if record is not None:
            record["budget"] = booked
            publish(record, self.sink)
        return {LEDGER_KEY: increment, RUN_KEY: ticket.plan.run}

    def _exhausted_reply(
        self,
        exc: BudgetExhaustedError,
        budget: WorkflowBudget,
        state: Mapping[str, Any],
        config: RunnableConfig | None,
        grant: Grant,
    ) -> Reply:
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
        publish(record, self.sink)
        return Reply(message, record, {"messages": [message], LEDGER_KEY: increment, RUN_KEY: run})


def finish_reason(outcome: Outcome) -> str:
    """Why the chosen reply ended: ``"stop"``, ``"length"`` or ``"deadline"``."""
    chosen = next((c for c in outcome.candidates if c.text == outcome.text), None)
    return chosen.finish_reason if chosen is not None else "stop"


def _cost_of(message: AIMessage | None) -> Cost | None:
    """What a reply cost: its ttc record's actual cost, else its usage (a model another
    middleware put in place of ttc-agent's); ``None`` for a failed call."""
    if message is None:
        return None
    record = message.response_metadata.get("ttc")
    if record is not None and "actual" in record:
        a = record["actual"]
        return Cost(
            a["prompt_tokens"],
            a["completion_tokens"],
            a["verifier_tokens"],
            a["rounds"],
            a["seconds"],
            a["verifier_seconds"],
        )
    usage = message.usage_metadata or {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    return Cost(prompt_tokens=usage["input_tokens"], completion_tokens=usage["output_tokens"], rounds=1)


def _ask_for_more(exc: BudgetExhaustedError) -> Grant | None:
    """``on_exhausted="ask"``: interrupt the graph; the answer grows the grant or stops."""
    from langgraph.types import interrupt

    return parse_grant(interrupt({"ttc_budget_exhausted": exc.exhausted.as_dict()}))


def _check_ledger_channel(state: Mapping[str, Any]) -> None:
    """A budgeted call whose graph drops the ledger would never see its earlier spend: when the
    conversation already holds a budgeted reply but the state has no ledger, say so."""
    if LEDGER_KEY in state:
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
