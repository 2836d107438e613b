"""Budget stores: where concurrent calls reserve against one allowance, in one process or many.

A `BudgetStore` keeps, per allowance key, the spend settled so far, the number of calls and the
reservations outstanding, and makes "reserve at most what is left" atomic. Three implementations:

- `ReservationPool` (the process-wide one every node uses by default): threads of one process;
- `SQLiteStore`: processes on one machine sharing a database file (``BEGIN IMMEDIATE``);
- `PostgresStore`: processes on several machines sharing a Postgres database (the account
  row is locked by the upsert that starts each reservation, so reservations of one key
  serialise and the room they see is exact).

Both SQL stores charge a reservation whose holder vanished (a killed process) in full once its
``ttl`` passes: its spend is unknown, so the store never assumes it was less than reserved.

A store also keeps the sessions of ``ttc-agent serve`` (`Session`): a named budget owned by one
API key. Any store works as a node's or the server's ``pool``:

    >>> store = PostgresStore("postgresql://ttc@db/ttc")
    >>> TTCEngine(backend, probes, pool=store)
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ttc_agent.budgets.pool import AccountKey, Amount, Reservation, Session, Spend, room_for
from ttc_agent.errors import InvalidRequestError, TTCError
from ttc_agent.extras import needs_extra
from ttc_agent.validation import POSITIVE_INT, check_param

if TYPE_CHECKING:
    import psycopg


class BudgetStoreError(TTCError):
    """The budget store cannot be reached or answered wrongly: no call runs unbudgeted."""


@runtime_checkable
class BudgetStore(Protocol):
    """Accounts of settled spend and outstanding reservations, per allowance key (see the
    module docs). `ReservationPool.reserve` documents the semantics all stores share."""

    def available(self, key: AccountKey, spent_tokens: int, spent_seconds: float) -> tuple[int, float, int]:
        """Spent tokens and seconds counting the reservations outstanding, and how many there are."""
        ...

    def reserve(self, key: AccountKey, spent: tuple[int, float], allowance: Amount, want: Amount) -> Reservation:
        """Atomically hold up to ``want`` for one call, within what ``allowance`` leaves."""
        ...

    def settle(self, reservation: Reservation, tokens: int, seconds: float) -> None:
        """Release the reservation and book the call's actual spend (one call)."""
        ...

    def release(self, reservation: Reservation) -> None:
        """Release the reservation without booking a call (it never ran)."""
        ...

    def spend(self, key: AccountKey) -> Spend:
        """The account's settled spend and reservations in flight."""
        ...

    def create_session(self, session: Session) -> Session:
        """Create a session; raises `InvalidRequestError` if the owner already has that id."""
        ...

    def session(self, owner: str, session_id: str) -> Session | None:
        """The owner's session of that id, or ``None``."""
        ...


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS ttc_accounts (
        key TEXT PRIMARY KEY, tokens BIGINT NOT NULL DEFAULT 0,
        seconds DOUBLE PRECISION NOT NULL DEFAULT 0, calls BIGINT NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS ttc_reservations (
        id TEXT PRIMARY KEY, key TEXT NOT NULL, tokens BIGINT NOT NULL,
        seconds DOUBLE PRECISION NOT NULL, expires DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS ttc_reservations_key ON ttc_reservations (key)",
    """CREATE TABLE IF NOT EXISTS ttc_sessions (
        owner TEXT NOT NULL, id TEXT NOT NULL, max_tokens BIGINT, max_seconds DOUBLE PRECISION,
        expected_calls BIGINT, on_exhausted TEXT NOT NULL, PRIMARY KEY (owner, id))""",
)


class _SQLStore:
    """The SQL both database stores share; subclasses give the connection and the dialect."""

    #: The placeholder of the driver's parameter style, and the two-argument maximum.
    _P = "?"
    _MAX = "MAX"

    def __init__(self, ttl: float) -> None:
        if not (math.isfinite(ttl) and ttl > 0):
            raise InvalidRequestError(f"ttl must be a positive number of seconds, got {ttl!r}")
        self.ttl = ttl
        self._local = threading.local()

    # -- what subclasses provide --

    @contextmanager
    def _transaction(self) -> Iterator[_Cursor]:
        raise NotImplementedError
        yield  # pragma: no cover

    # -- the accounts --

    def _sql(self, text: str) -> str:
        return text.replace("?", self._P).replace("MAXOF", self._MAX)

    def _seed(self, cur: _Cursor, k: str, tokens: int, seconds: float) -> None:
        """Create the account, or raise it to the spend a ledger shows (this also locks the row)."""
        cur.execute(
            self._sql(
                "INSERT INTO ttc_accounts (key, tokens, seconds) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                "tokens = MAXOF(ttc_accounts.tokens, excluded.tokens), "
                "seconds = MAXOF(ttc_accounts.seconds, excluded.seconds)"
            ),
            (k, int(tokens), float(seconds)),
        )
        # Reservations whose holder never settled them (a killed process) are charged in full.
        cur.execute(
            self._sql("DELETE FROM ttc_reservations WHERE key = ? AND expires < ? RETURNING tokens, seconds"),
            (k, time.time()),
        )
        lost = cur.fetchall()
        if lost:
            cur.execute(
                self._sql("UPDATE ttc_accounts SET tokens = tokens + ?, seconds = seconds + ? WHERE key = ?"),
                (sum(int(t) for t, _ in lost), sum(float(s) for _, s in lost), k),
            )

    def _account(self, cur: _Cursor, k: str) -> tuple[Spend, int, float]:
        """The account's spend, and the tokens and seconds its reservations hold."""
        cur.execute(
            self._sql(
                "SELECT a.tokens, a.seconds, a.calls, "
                "(SELECT COUNT(*) FROM ttc_reservations r WHERE r.key = a.key), "
                "(SELECT COALESCE(SUM(r.tokens), 0) FROM ttc_reservations r WHERE r.key = a.key), "
                "(SELECT COALESCE(SUM(r.seconds), 0) FROM ttc_reservations r WHERE r.key = a.key) "
                "FROM ttc_accounts a WHERE a.key = ?"
            ),
            (k,),
        )
        row = cur.fetchone()
        if row is None:
            return Spend(), 0, 0.0
        tokens, seconds, calls, n, held_t, held_s = row
        return Spend(int(tokens), float(seconds), int(calls), int(n)), int(held_t), float(held_s)

    def available(self, key: AccountKey, spent_tokens: int, spent_seconds: float) -> tuple[int, float, int]:
        k = _key_text(key)
        with self._transaction() as cur:
            self._seed(cur, k, spent_tokens, spent_seconds)
            spend, held_t, held_s = self._account(cur, k)
        return spend.tokens + held_t, spend.seconds + held_s, spend.in_flight

    def reserve(self, key: AccountKey, spent: tuple[int, float], allowance: Amount, want: Amount) -> Reservation:
        k = _key_text(key)
        with self._transaction() as cur:
            self._seed(cur, k, *spent)
            spend, held_t, held_s = self._account(cur, k)
            tokens, seconds = room_for(allowance, want, spend.tokens + held_t, spend.seconds + held_s)
            rid = uuid.uuid4().hex
            cur.execute(
                self._sql("INSERT INTO ttc_reservations (id, key, tokens, seconds, expires) VALUES (?, ?, ?, ?, ?)"),
                (rid, k, tokens or 0, seconds or 0.0, time.time() + max(self.ttl, (seconds or 0.0) * 2)),
            )
        return Reservation(key, rid, tokens, seconds)

    def _close(self, reservation: Reservation, tokens: int, seconds: float, calls: int) -> None:
        with self._transaction() as cur:
            cur.execute(self._sql("DELETE FROM ttc_reservations WHERE id = ? RETURNING id"), (reservation.id,))
            if cur.fetchone() is None:  # released already, or expired and charged in full
                tokens, seconds = 0, 0.0
            cur.execute(
                self._sql(
                    "UPDATE ttc_accounts SET tokens = tokens + ?, seconds = seconds + ?, calls = calls + ? "
                    "WHERE key = ?"
                ),
                (int(tokens), float(seconds), calls, _key_text(reservation.key)),
            )

    def settle(self, reservation: Reservation, tokens: int, seconds: float) -> None:
        self._close(reservation, tokens, seconds, 1)

    def release(self, reservation: Reservation) -> None:
        self._close(reservation, 0, 0.0, 0)

    def spend(self, key: AccountKey) -> Spend:
        with self._transaction() as cur:
            return self._account(cur, _key_text(key))[0]

    # -- the sessions --

    def create_session(self, session: Session) -> Session:
        with self._transaction() as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO ttc_sessions (owner, id, max_tokens, max_seconds, expected_calls, on_exhausted) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (owner, id) DO NOTHING RETURNING id"
                ),
                (session.owner, session.id, session.max_tokens, session.max_seconds, session.expected_calls,
                 session.on_exhausted),
            )  # fmt: skip
            if cur.fetchone() is None:
                raise InvalidRequestError(f"session {session.id!r} already exists")
        return session

    def session(self, owner: str, session_id: str) -> Session | None:
        with self._transaction() as cur:
            cur.execute(
                self._sql(
                    "SELECT max_tokens, max_seconds, expected_calls, on_exhausted FROM ttc_sessions "
                    "WHERE owner = ? AND id = ?"
                ),
                (owner, session_id),
            )
            row = cur.fetchone()
        if row is None:
            return None
        max_tokens, max_seconds, expected, on_exhausted = row
        return Session(
            owner,
            session_id,
            None if max_tokens is None else int(max_tokens),
            None if max_seconds is None else float(max_seconds),
            None if expected is None else int(expected),
            on_exhausted,
        )


#: A database row: its columns' Python types depend on the driver and the column.
_Row = tuple[Any, ...]


class _Cursor(Protocol):
    def execute(self, sql: str, params: tuple[object, ...] = ..., /) -> object: ...
    def fetchone(self) -> _Row | None: ...
    def fetchall(self) -> list[_Row]: ...


def _key_text(key: AccountKey) -> str:
    return json.dumps(list(key))


class SQLiteStore(_SQLStore):
    """A store in a SQLite file, shared by the processes of one machine.

    Args:
        path: the database file (created with its tables if missing).
        ttl: seconds after which a reservation nobody settled is charged in full.
        timeout: seconds to wait for another process's write lock before failing.
    """

    def __init__(self, path: str | Path, *, ttl: float = 900.0, timeout: float = 30.0) -> None:
        super().__init__(ttl)
        self.path = Path(path)
        self.timeout = timeout
        with self._transaction() as cur:
            for statement in _SCHEMA:
                cur.execute(statement)

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.Error as exc:
                raise BudgetStoreError(f"cannot open the budget store {str(self.path)!r}: {exc}") from exc
            self._local.conn = conn
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[_Cursor]:
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")  # the write lock first: reservations serialise
            cur = conn.cursor()
            try:
                yield cur
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise BudgetStoreError(f"the budget store {str(self.path)!r} failed: {exc}") from exc


class PostgresStore(_SQLStore):
    """A store in Postgres, shared by processes on several machines (the ``[postgres]`` extra).

    Connections come from a `psycopg_pool.ConnectionPool` (checked before each use, so one the
    server dropped is replaced instead of failing a call); `close` closes the pool.

    Args:
        dsn: a libpq connection string or URL (``postgresql://user@host:port/db``).
        ttl: seconds after which a reservation nobody settled is charged in full.
        connect_timeout: seconds to wait for the server, or for a free connection, before
            `BudgetStoreError`.
        max_connections: the most connections this process holds open (one per concurrent call).
    """

    _P = "%s"
    _MAX = "GREATEST"

    def __init__(
        self, dsn: str, *, ttl: float = 900.0, connect_timeout: float = 5.0, max_connections: int = 16
    ) -> None:
        super().__init__(ttl)
        check_param("max_connections", max_connections, POSITIVE_INT, owner="PostgresStore")
        with needs_extra("postgres", "PostgresStore"):
            from psycopg_pool import ConnectionPool, PoolTimeout

        self.dsn = dsn
        self.connect_timeout = connect_timeout
        kwargs = {"autocommit": True, "connect_timeout": max(1, round(connect_timeout))}
        self._pool: ConnectionPool[psycopg.Connection[tuple[object, ...]]] = ConnectionPool(
            dsn, min_size=1, max_size=max_connections, kwargs=kwargs, timeout=connect_timeout, open=False,
            check=ConnectionPool.check_connection, name="ttc-agent-budgets",
        )  # fmt: skip
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except PoolTimeout as exc:
            self._pool.close()
            raise BudgetStoreError(
                f"cannot reach the budget store at {_redact(dsn)} within {connect_timeout:g} s"
            ) from exc
        with self._transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(7461636)")  # replicas starting together
            for statement in _SCHEMA:
                cur.execute(statement)

    def close(self) -> None:
        """Close the pool's connections (the store is unusable afterwards)."""
        self._pool.close()

    @contextmanager
    def _transaction(self) -> Iterator[_Cursor]:
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                yield cur
        except PoolTimeout as exc:
            raise BudgetStoreError(f"cannot reach the budget store at {_redact(self.dsn)}: {exc}") from exc
        except psycopg.Error as exc:
            raise BudgetStoreError(f"the budget store at {_redact(self.dsn)} failed: {exc}") from exc


def _redact(dsn: str) -> str:
    """The connection string without its password."""
    from urllib.parse import urlsplit, urlunsplit

    if "://" not in dsn:
        return " ".join(p for p in dsn.split() if not p.startswith("password="))
    parts = urlsplit(dsn)
    host = parts.hostname or ""
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, f"{user}{host}{port}", parts.path, "", ""))
