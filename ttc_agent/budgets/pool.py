"""Reservations: concurrent calls of one workflow reserve their capped cost before they run.

Parallel branches read the same ledger from state, and graph threads that share one budget
each have their own ledger, so neither can see the others' calls in flight. A `ReservationPool`
(one per process, shared by every node) keeps, per allowance, the spend settled through it and
the reservations outstanding. A call reserves its hard caps (at most what is left after the
other reservations), runs, and settles its actual cost, so calls running together cannot
overrun the allowance between them.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from ttc_agent.errors import InvalidRequestError

#: An allowance's key: its scope and identity (see `BudgetGate`).
AccountKey = tuple[str, ...]


class Amount(NamedTuple):
    """Tokens and seconds, each ``None`` where that limit is not budgeted."""

    tokens: float | None
    seconds: float | None


@dataclass(frozen=True)
class Reservation:
    """What one call may spend: its key, id and reserved tokens and seconds."""

    key: AccountKey
    id: str
    tokens: int | None
    seconds: float | None


@dataclass(frozen=True)
class Spend:
    """What an account holds: settled tokens, seconds and calls, and reservations in flight."""

    tokens: int = 0
    seconds: float = 0.0
    calls: int = 0
    in_flight: int = 0


@dataclass(frozen=True)
class Session:
    """A named budget of ``ttc-agent serve``, visible only to the API key that made it.

    ``owner`` is a digest of that key (never the key itself); ``None`` limits are unbudgeted.
    """

    owner: str
    id: str
    max_tokens: int | None = None
    max_seconds: float | None = None
    expected_calls: int | None = None
    on_exhausted: Literal["end", "error"] = "end"

    @property
    def key(self) -> AccountKey:
        """The session's account key."""
        return ("session", self.owner, self.id)


def room_for(
    allowance: Amount, want: Amount, spent_tokens: int, spent_seconds: float
) -> tuple[int | None, float | None]:
    """What a reservation may hold: ``want``, capped at what ``allowance`` leaves after
    ``spent`` (settled spend and other reservations); ``None`` where a limit is not budgeted."""
    tokens: int | None = None
    seconds: float | None = None
    if allowance.tokens is not None:
        room = max(int(allowance.tokens) - spent_tokens, 0)
        tokens = room if want.tokens is None else max(min(math.ceil(want.tokens), room), 0)
    if allowance.seconds is not None:
        room_s = max(float(allowance.seconds) - spent_seconds, 0.0)
        seconds = room_s if want.seconds is None else max(min(float(want.seconds), room_s), 0.0)
    return tokens, seconds


@dataclass
class _Account:
    tokens: int = 0
    seconds: float = 0.0
    calls: int = 0
    reserved: dict[str, tuple[int, float]] = field(default_factory=dict)


class ReservationPool:
    """Thread-safe accounts of settled spend and outstanding reservations, per allowance key:
    the in-process `ttc_agent.budgets.store.BudgetStore` (sessions included).

    ``spent`` from the ledger seeds an account the first time a key is seen (and whenever the
    ledger shows more, e.g. after a restart); from then on, settled calls add to it at once,
    before their ledger increments reach the state.
    """

    def __init__(self, max_accounts: int = 10_000) -> None:
        self._accounts: OrderedDict[AccountKey, _Account] = OrderedDict()
        self._sessions: dict[tuple[str, str], Session] = {}
        self._lock = threading.Lock()
        self.max_accounts = max_accounts

    def _account(self, key: AccountKey, tokens: int, seconds: float) -> _Account:
        acc = self._accounts.get(key)
        if acc is None:
            acc = self._accounts[key] = _Account(tokens, seconds)
            while len(self._accounts) > self.max_accounts:
                oldest = next(iter(self._accounts))
                if self._accounts[oldest].reserved:
                    break
                del self._accounts[oldest]
        else:
            acc.tokens, acc.seconds = max(acc.tokens, tokens), max(acc.seconds, seconds)
            self._accounts.move_to_end(key)
        return acc

    def available(self, key: AccountKey, spent_tokens: int, spent_seconds: float) -> tuple[int, float, int]:
        """Spent tokens and seconds counting other calls' reservations, and how many are in flight."""
        with self._lock:
            acc = self._account(key, spent_tokens, spent_seconds)
            held_t = sum(t for t, _ in acc.reserved.values())
            held_s = sum(s for _, s in acc.reserved.values())
            return acc.tokens + held_t, acc.seconds + held_s, len(acc.reserved)

    def reserve(
        self,
        key: AccountKey,
        spent: tuple[int, float],
        allowance: Amount,
        want: Amount,
    ) -> Reservation:
        """Atomically hold up to ``want`` (tokens, seconds) for one call, never more than the
        ``allowance`` leaves after settled spend and the other reservations (``None``: that
        limit is not budgeted). A reservation of 0 means nothing was left."""
        with self._lock:
            acc = self._account(key, *spent)
            held_t = sum(t for t, _ in acc.reserved.values())
            held_s = sum(s for _, s in acc.reserved.values())
            tokens, seconds = room_for(allowance, want, acc.tokens + held_t, acc.seconds + held_s)
            rid = uuid.uuid4().hex
            acc.reserved[rid] = (tokens or 0, seconds or 0.0)
            return Reservation(key, rid, tokens, seconds)

    def settle(self, reservation: Reservation, tokens: int, seconds: float) -> None:
        """Release a reservation and book the call's actual spend (also after a failure)."""
        with self._lock:
            acc = self._accounts.get(reservation.key)
            if acc is None:
                return
            acc.reserved.pop(reservation.id, None)
            acc.tokens += tokens
            acc.seconds += seconds
            acc.calls += 1

    def release(self, reservation: Reservation) -> None:
        """Release a reservation whose call never ran (nothing is booked)."""
        with self._lock:
            acc = self._accounts.get(reservation.key)
            if acc is not None:
                acc.reserved.pop(reservation.id, None)

    def spend(self, key: AccountKey) -> Spend:
        """The account's settled spend and reservations in flight."""
        with self._lock:
            acc = self._accounts.get(key)
            return Spend() if acc is None else Spend(acc.tokens, acc.seconds, acc.calls, len(acc.reserved))

    def create_session(self, session: Session) -> Session:
        """Create a session; raises `InvalidRequestError` if its owner already has that id."""
        with self._lock:
            if (session.owner, session.id) in self._sessions:
                raise InvalidRequestError(f"session {session.id!r} already exists")
            self._sessions[session.owner, session.id] = session
        return session

    def session(self, owner: str, session_id: str) -> Session | None:
        """The owner's session of that id, or ``None``."""
        with self._lock:
            return self._sessions.get((owner, session_id))


#: The pool every node uses unless given its own.
POOL = ReservationPool()
