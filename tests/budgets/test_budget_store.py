"""Budget stores: the in-process pool, SQLite and a real Postgres server hold reservations
atomically, across threads and across processes, and keep sessions per owner."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ttc_agent.budgets import (
    BudgetStore,
    BudgetStoreError,
    PostgresStore,
    ReservationPool,
    Session,
    SQLiteStore,
)
from ttc_agent.budgets.pool import Amount
from ttc_agent.errors import InvalidRequestError

KEY = ("shared", "team", "b1")


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request, tmp_path) -> BudgetStore:
    if request.param == "memory":
        return ReservationPool()
    if request.param == "sqlite":
        return SQLiteStore(tmp_path / "budgets.sqlite")
    dsn = request.getfixturevalue("postgres_dsn")
    made = PostgresStore(dsn)
    with made._transaction() as cur:  # each test starts from empty tables
        cur.execute("TRUNCATE ttc_accounts, ttc_reservations, ttc_sessions")
    return made


def test_concurrent_reservations_never_exceed_the_allowance(store):
    allowance = Amount(500, None)

    def call(_: int) -> int:
        r = store.reserve(KEY, (0, 0.0), allowance, Amount(30, None))
        if r.tokens:
            store.settle(r, r.tokens, 0.1)
        else:
            store.release(r)
        return r.tokens or 0

    with ThreadPoolExecutor(8) as pool:
        granted = list(pool.map(call, range(40)))
    spend = store.spend(KEY)
    assert sum(granted) == spend.tokens == 500, "the allowance was filled exactly, never passed"
    assert spend.calls == sum(1 for g in granted if g) and spend.in_flight == 0
    assert store.available(KEY, 0, 0.0) == (500, pytest.approx(0.1 * spend.calls), 0)


def test_a_reservation_holds_its_room_until_settled_and_release_books_no_call(store):
    allowance = Amount(100, 10.0)
    first = store.reserve(KEY, (0, 0.0), allowance, Amount(70, 4.0))
    second = store.reserve(KEY, (0, 0.0), allowance, Amount(70, 4.0))
    assert (first.tokens, first.seconds) == (70, 4.0)
    assert (second.tokens, second.seconds) == (30, 4.0), "only what the first left"
    assert store.spend(KEY).in_flight == 2
    store.release(second)
    store.settle(first, 50, 2.5)
    assert store.spend(KEY) == type(store.spend(KEY))(50, 2.5, 1, 0)


def test_a_ledger_showing_more_spend_raises_the_account(store):
    assert store.available(KEY, 120, 3.0)[:2] == (120, 3.0)
    assert store.available(KEY, 80, 1.0)[:2] == (120, 3.0), "never lowered"


def test_sessions_belong_to_their_owner(store):
    made = store.create_session(Session("owner-a", "s1", max_tokens=1000, max_seconds=60.0, expected_calls=4))
    assert store.session("owner-a", "s1") == made
    assert store.session("owner-b", "s1") is None, "another key cannot see it"
    with pytest.raises(InvalidRequestError, match="'s1' already exists"):
        store.create_session(Session("owner-a", "s1"))
    store.create_session(Session("owner-b", "s1", on_exhausted="error"))  # same id, other owner
    assert store.session("owner-b", "s1").on_exhausted == "error"


def test_an_abandoned_reservation_is_charged_in_full_after_its_ttl(tmp_path):
    store = SQLiteStore(tmp_path / "b.sqlite", ttl=0.05)
    lost = store.reserve(KEY, (0, 0.0), Amount(100, None), Amount(60, 1e-3))  # its holder was killed
    time.sleep(0.1)
    assert store.available(KEY, 0, 0.0)[0] == 60 and store.spend(KEY).in_flight == 0
    store.settle(lost, 10, 0.5)  # a late settle books the call, not its spend a second time
    assert store.spend(KEY).tokens == 60


def test_bad_ttl_and_unreachable_postgres_are_typed_errors(tmp_path):
    with pytest.raises(InvalidRequestError, match="ttl"):
        SQLiteStore(tmp_path / "b.sqlite", ttl=float("nan"))
    from ttc_agent.backends.vllm_server import free_port

    dsn = f"postgresql://ttc:secret@127.0.0.1:{free_port()}/ttc"
    with pytest.raises(BudgetStoreError, match="cannot reach") as err:
        PostgresStore(dsn, connect_timeout=1)
    assert "secret" not in str(err.value), "the password is not written into errors"


def _reserve_many(args: tuple[str, str, int]) -> int:
    kind, where, n = args
    store = SQLiteStore(where) if kind == "sqlite" else PostgresStore(where)
    got = 0
    for _ in range(n):
        r = store.reserve(KEY, (0, 0.0), Amount(1000, None), Amount(13, None))
        got += r.tokens or 0
        store.settle(r, r.tokens or 0, 0.0)
    return got


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_processes_sharing_a_store_never_overrun_it(kind, tmp_path, request):
    where = str(tmp_path / "b.sqlite") if kind == "sqlite" else request.getfixturevalue("postgres_dsn")
    store = SQLiteStore(where) if kind == "sqlite" else PostgresStore(where)
    if kind == "postgres":
        with store._transaction() as cur:
            cur.execute("TRUNCATE ttc_accounts, ttc_reservations, ttc_sessions")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        granted = pool.map(_reserve_many, [(kind, where, 25)] * 4)  # 100 calls want 1300 tokens
    assert sum(granted) == store.spend(KEY).tokens == 1000


@pytest.mark.slow
def test_postgres_calls_share_a_bounded_pool_and_a_dropped_connection_is_replaced(postgres_dsn):
    """More concurrent calls than connections queue for one; a connection the server killed is
    checked out, found dead and replaced instead of failing the next call."""
    with pytest.raises(InvalidRequestError, match="max_connections"):
        PostgresStore(postgres_dsn, max_connections=0)
    store = PostgresStore(postgres_dsn, max_connections=2)
    with store._transaction() as cur:
        cur.execute("TRUNCATE ttc_accounts, ttc_reservations, ttc_sessions")

    def call(_: int) -> int:
        r = store.reserve(KEY, (0, 0.0), Amount(10_000, None), Amount(10, None))
        store.settle(r, 10, 0.01)
        return r.tokens or 0

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(call, range(24))) == 240
    assert store._pool.get_stats()["pool_max"] == 2
    killer = PostgresStore(postgres_dsn, max_connections=1)
    with killer._transaction() as cur:  # the server drops every other client's connection
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                    "AND datname = current_database()")  # fmt: skip
    assert call(0) == 10 and store.spend(KEY).tokens == 250
    store.close()
    killer.close()
