"""`ChatService`: the engine's fourth face, one OpenAI request under its session's budget.

A request is prepared first (checked, its session found, its strategy decided and its caps
reserved in the store), so every refusal, budget exhaustion included, is an HTTP error before
a stream starts; then it runs, with the same fallback to cheaper strategies as `TTCNode`, and
settles its spend in the store (also when the client has gone).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig

from ttc_agent.budgets import BudgetExhaustedError, BudgetStore, BudgetStoreError, Ledger, Session, WorkflowBudget
from ttc_agent.budgets.ledger import LEDGER_KEY
from ttc_agent.budgets.pool import AccountKey
from ttc_agent.errors import BackendError, InvalidRequestError, TTCError
from ttc_agent.nodes.attempts import Attempts, attempts, drive
from ttc_agent.nodes.engine import Call, Reply, Ticket, TTCEngine
from ttc_agent.nodes.settings import TTCSettings, merge, parse_settings, sample_cap
from ttc_agent.server.protocol import APIError, ChatRequest, SessionRequest, ttc_object
from ttc_agent.tracing import call_span, end_span

T = TypeVar("T")


@dataclass(frozen=True)
class SessionDefaults:
    """Limits of sessions created on first use (``None``: sessions must be created first)."""

    max_tokens: int | None = None
    max_seconds: float | None = None
    expected_calls: int | None = None


@dataclass
class Prepared:
    """A request ready to run: its call, its attempts (the first ticket taken) and session."""

    call: Call
    steps: Attempts
    ticket: Ticket
    session: Session | None
    structured: bool = False


def session_budget(session: Session) -> WorkflowBudget:
    """The workflow budget every request of ``session`` draws from (in the server's store)."""
    return WorkflowBudget(
        max_tokens=session.max_tokens,
        max_seconds=session.max_seconds,
        scope="thread",
        on_exhausted=session.on_exhausted,
        expected_calls=session.expected_calls,
        shared_by=json.dumps(list(session.key)),
    )


def account_key(budget: WorkflowBudget) -> AccountKey:
    """The store account a session's budget draws from (as `BudgetGate` keys it)."""
    assert budget.shared_by is not None
    return ("shared", budget.shared_by, budget.digest)


class ChatService:
    """Answers chat requests with ``engine``, each session's budget kept in ``store``.

    Args:
        engine: decides and runs each request (its ``pool`` must be ``store``).
        store: the budget store shared by every replica.
        model_name: the name clients send; ``NAME:STRATEGY`` forces a strategy of the menu.
        max_tokens: the largest ``max_tokens`` a request may ask for.
        defaults: limits of sessions created on first use (``None``: unknown sessions are 404).
        strict: refuse the OpenAI fields the engine decides (sampling settings, ``seed``,
            ``metadata``...) instead of ignoring them.
    """

    def __init__(
        self,
        engine: TTCEngine,
        store: BudgetStore,
        *,
        model_name: str,
        max_tokens: int = 4096,
        defaults: SessionDefaults | None = None,
        strict: bool = False,
    ) -> None:
        if engine.gate.pool is not store:
            raise InvalidRequestError("the engine must reserve in the server's store: TTCEngine(..., pool=store)")
        self.engine, self.store, self.model_name = engine, store, model_name
        self.max_tokens, self.defaults, self.strict = max_tokens, defaults, strict

    def readiness(self) -> dict[str, str]:
        """Whether the budget store and the backend answer: ``"ok"`` or why not, for each."""
        checks = {}
        for name, probe in (
            ("store", lambda: self.store.spend(("ready", "probe"))),
            ("backend", lambda: self.engine.backend.count_tokens("ready?")),
        ):
            try:
                probe()
                checks[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - any failure means not ready; its text is the answer
                checks[name] = f"{type(exc).__name__}: {exc}"[:300]
        return checks

    def models(self) -> list[str]:
        """The model names served: adaptive, then one per strategy of the menu."""
        return [self.model_name, *(f"{self.model_name}:{s}" for s in self.engine.menu.specs)]

    # -- sessions --

    def create_session(self, owner: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a session from an admin request's body (``id``, limits)."""
        allowed = set(SessionRequest.model_fields)
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise APIError(400, f"unknown session fields {unknown}; known: {sorted(allowed)}")
        sid = body.get("id")
        if not isinstance(sid, str) or not sid or len(sid) > 200:
            raise APIError(400, f"id must be a non-empty string of at most 200 characters, got {sid!r}", param="id")
        fields = {k: v for k, v in body.items() if k != "id"}
        if fields.get("on_exhausted", "end") not in ("end", "error"):
            raise APIError(400, f"on_exhausted must be 'end' or 'error' (a server has no one to ask), got "
                           f"{fields['on_exhausted']!r}", param="on_exhausted")  # fmt: skip
        try:
            session = Session(owner, sid, **fields)
            session_budget(session)  # checks the limits
            self._store(lambda: self.store.create_session(session))
        except InvalidRequestError as exc:
            raise APIError(409 if "already exists" in str(exc) else 400, str(exc)) from None
        except TTCError as exc:  # BudgetError: a bad limit
            raise APIError(400, str(exc)) from None
        except TypeError as exc:
            raise APIError(400, str(exc)) from None
        return self.describe(session)

    def session(self, owner: str, sid: str, *, create: bool = False) -> Session:
        """The owner's session ``sid``; created with the defaults when allowed, else a 404."""
        found = self._store(lambda: self.store.session(owner, sid))
        if found is not None:
            return found
        if not create or self.defaults is None:
            raise APIError(404, f"no session {sid!r} for this API key", code="session_not_found")
        made = Session(owner, sid, self.defaults.max_tokens, self.defaults.max_seconds, self.defaults.expected_calls)
        try:
            return self._store(lambda: self.store.create_session(made))
        except InvalidRequestError:  # another replica made it first
            again = self._store(lambda: self.store.session(owner, sid))
            assert again is not None
            return again

    def describe(self, session: Session) -> dict[str, Any]:
        """A session's limits, spend and what is left."""
        spend = self._store(lambda: self.store.spend(account_key(session_budget(session))))
        return {
            "id": session.id,
            "max_tokens": session.max_tokens,
            "max_seconds": session.max_seconds,
            "expected_calls": session.expected_calls,
            "on_exhausted": session.on_exhausted,
            "tokens": spend.tokens,
            "seconds": round(spend.seconds, 3),
            "calls": spend.calls,
            "in_flight": spend.in_flight,
            "tokens_left": None if session.max_tokens is None else session.max_tokens - spend.tokens,
            "seconds_left": None if session.max_seconds is None else round(session.max_seconds - spend.seconds, 3),
        }

    # -- requests --

    def prepare(self, owner: str, request: ChatRequest, session_id: str | None) -> Prepared:
        """Check the request, find its session and decide its strategy under the session's
        budget (the caps reserved). Raises `APIError` for every refusal."""
        call = self._call(request)
        session = self.session(owner, session_id, create=True) if session_id else None
        budget = session_budget(session) if session is not None else None
        state = self._state(budget)
        config: RunnableConfig = {"configurable": {"thread_id": session_id or ""}}
        steps = attempts(self.engine, call, budget=budget, state=state, config=config)
        try:
            with _as_api_errors():
                ticket = next(steps)
        except StopIteration as stop:  # the session's budget cannot afford the cheapest strategy
            reply: Reply = stop.value
            raise _exhausted(reply.message.text, reply.record.get("exhausted", {}).get("limit", "tokens")) from None
        return Prepared(call, steps, ticket, session, request.schema_tool() is not None)

    def run(self, prepared: Prepared) -> tuple[AIMessage, dict[str, Any]]:
        """Run a prepared request to its reply and ``ttc`` object; its spend is settled in the
        store whatever happens to the client."""
        engine, call = self.engine, prepared.call

        def run(ticket: Ticket) -> AIMessage:
            with call_span(engine.name, self.model_name, ticket.decision, call.stop) as span:
                message = engine.finish(ticket, ticket.prompt, engine.run(ticket, call, ticket.prompt))
                end_span(span, message, self.model_name)
                return message

        with _as_api_errors():
            reply = drive(prepared.steps, run, prepared.ticket)
        session = self.describe(prepared.session) if prepared.session is not None else None
        message = reply.message
        if prepared.structured and message.tool_calls:  # response_format: the object as JSON content
            message = message.model_copy(
                update={"content": json.dumps(message.tool_calls[0]["args"]), "tool_calls": []}
            )
        return message, ttc_object(reply.record, session)

    def _call(self, request: ChatRequest) -> Call:
        if request.n != 1:
            raise APIError(400, f"n must be 1, got {request.n}: ttc-agent decides how many samples to draw", param="n")
        if self.strict:
            request.check_strict()
        try:
            settings = parse_settings(request.ttc, "ttc")
            forced = self._forced(request.model)
            if forced is not None:
                settings = merge(settings, TTCSettings(strategy=forced))
        except InvalidRequestError as exc:
            raise APIError(400, str(exc), param="ttc") from None
        max_tokens = sample_cap(settings, request.max_completion_tokens or request.max_tokens)
        if max_tokens is not None and max_tokens > self.max_tokens:
            raise APIError(400, f"max_tokens {max_tokens} is over this server's limit of {self.max_tokens}",
                           param="max_tokens")  # fmt: skip
        messages: list[BaseMessage] = request.lc_messages()
        tools, tool_choice = request.tools or [], request.tool_choice
        schema = request.schema_tool()
        if schema is not None:
            if tools:
                raise APIError(400, "give tools or a response_format json_schema, not both", param="response_format")
            tools, tool_choice = [schema], schema["function"]["name"]
        return Call(
            messages,
            tools=tools,
            tool_choice=tool_choice,
            stop=request.stops(),
            settings=settings,
            deterministic=request.temperature == 0,
            max_tokens=max_tokens,
        )

    def _forced(self, model: str) -> str | None:
        if model == self.model_name:
            return None
        name, sep, spec = model.partition(":")
        if name != self.model_name or not sep:
            raise APIError(404, f"model {model!r} is not served here; models: {self.models()}",
                           code="model_not_found", param="model")  # fmt: skip
        return spec

    def _state(self, budget: WorkflowBudget | None) -> dict[str, Any]:
        """The ledger a session's request decides on: the store's account, which every
        replica writes (graph state has no part in it)."""
        if budget is None:
            return {}
        spend = self._store(lambda: self.store.spend(account_key(budget)))
        return {LEDGER_KEY: Ledger(budget=budget.digest, tokens=spend.tokens, seconds=spend.seconds, calls=spend.calls)}

    @staticmethod
    def _store(op: Callable[[], T]) -> T:
        """A store operation; an unreachable store is a 503 (its other errors go on as they are)."""
        try:
            return op()
        except BudgetStoreError as exc:
            raise APIError(503, str(exc), type="budget_store_unavailable") from None


@contextmanager
def _as_api_errors() -> Iterator[None]:
    """The engine's and the store's typed errors as the HTTP errors a client gets."""
    try:
        yield
    except BudgetExhaustedError as exc:
        raise _exhausted(str(exc), exc.exhausted.limit) from None
    except BudgetStoreError as exc:
        raise APIError(503, str(exc), type="budget_store_unavailable") from None
    except InvalidRequestError as exc:
        raise APIError(400, str(exc)) from None
    except BackendError as exc:
        raise APIError(502, str(exc), type="backend_error") from None


def _exhausted(message: str, limit: str) -> APIError:
    # 402, not 429: OpenAI clients retry a 429, and waiting does not refill a session.
    return APIError(402, message, type="budget_exhausted", code=f"budget_exhausted_{limit}")
