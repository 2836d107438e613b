"""Attempts: a decided call, and when its backend fails, the next cheaper strategy that fits.

`attempts` is the loop every face with a graph state runs (`TTCNode`, `TTCMiddleware`), written
once as a generator: it yields the ticket to run, receives the reply (or the error the call
raised), and returns the `Reply` whose state update books every attempt on the ledger, the
failed ones included. A failed attempt is charged its seconds and reserved tokens; the engine
then decides again among the strategies predicted to cost fewer tokens than the one that
failed, under what the budget has left. When none is left, the backend's error goes on.
`drive` and `adrive` run the loop with a sync or an async model call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import replace
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig

from ttc_agent.budgets.budget import BudgetExhaustedError, WorkflowBudget
from ttc_agent.budgets.ledger import LEDGER_KEY, Ledger, ledger_of, merge_ledgers
from ttc_agent.errors import BackendError, InvalidRequestError
from ttc_agent.nodes.engine import Call, Reply, Ticket, TTCEngine
from ttc_agent.nodes.messages import ChatPrompt

Attempts = Generator[Ticket, AIMessage, Reply]


def attempts(
    engine: TTCEngine,
    call: Call,
    *,
    budget: WorkflowBudget | None,
    state: Mapping[str, Any],
    config: RunnableConfig | None,
) -> Attempts:
    """Yield the tickets to run for ``call``, in turn; send each call's reply, or throw the
    exception it raised. Returns the final `Reply` (the budget's exhaustion reply included).
    ``budget`` is the run's (``None``: the engine's own, if it has one)."""
    budget = budget or engine.budget
    prompt = engine.prompt(call)
    admitted = engine.admit(call, prompt, budget=budget, state=state, config=config)
    failed: Ledger | None = None
    while not isinstance(admitted, Reply):
        try:
            message = yield admitted
        except BackendError:
            update = engine.settle(admitted, None, state)
            if update:
                failed = merge_ledgers(failed, update[LEDGER_KEY])
                state = {**state, LEDGER_KEY: merge_ledgers(ledger_of(state), update[LEDGER_KEY])}
            retry = _cheaper(engine, call, prompt, admitted, budget=budget, state=state, config=config)
            if retry is None:
                raise
            call, admitted = retry
            continue
        except GeneratorExit:  # closed before the ticket ran: nothing was spent
            engine.release(admitted)
            raise
        except BaseException:
            engine.settle(admitted, None, state)
            raise
        update = engine.settle(admitted, message, state)
        admitted = Reply(message, message.response_metadata.get("ttc", {}), {"messages": [message], **update})
    if failed is not None:
        booked = admitted.update.get(LEDGER_KEY)
        admitted.update[LEDGER_KEY] = merge_ledgers(failed, booked) if booked is not None else failed
    return admitted


def _cheaper(
    engine: TTCEngine,
    call: Call,
    prompt: ChatPrompt,
    failed: Ticket,
    *,
    budget: WorkflowBudget | None,
    state: Mapping[str, Any],
    config: RunnableConfig | None,
) -> tuple[Call, Ticket] | None:
    """The call without the failed strategy and every one predicted to cost as many tokens,
    and its new ticket; ``None`` when nothing cheaper is left or fits."""
    d = failed.decision
    dearer = {s for s, tokens in zip(d.specs, d.tokens, strict=True) if tokens >= d.tokens[d.index]}
    cheaper = replace(call, excluded=call.excluded | dearer)
    try:
        ticket = engine.decide(cheaper, prompt, budget=budget, state=state, config=config, grant=failed.grant)
    except (InvalidRequestError, BudgetExhaustedError):  # nothing cheaper allowed, or affordable
        return None
    return cheaper, ticket


def drive(steps: Attempts, run: Callable[[Ticket], AIMessage], first: Ticket | None = None) -> Reply:
    """Run the attempts with a synchronous model call (from ``first``, the ticket a caller
    already took from ``steps``, if given)."""
    try:
        ticket = first if first is not None else next(steps)
        while True:
            try:
                message = run(ticket)
            except BaseException as exc:
                ticket = steps.throw(exc)
            else:
                ticket = steps.send(message)
    except StopIteration as stop:
        reply: Reply = stop.value
        return reply


async def adrive(steps: Attempts, run: Callable[[Ticket], Awaitable[AIMessage]]) -> Reply:
    """Run the attempts with an async model call."""
    try:
        ticket = next(steps)
        while True:
            try:
                message = await run(ticket)
            except BaseException as exc:
                ticket = steps.throw(exc)
            else:
                ticket = steps.send(message)
    except StopIteration as stop:
        reply: Reply = stop.value
        return reply
