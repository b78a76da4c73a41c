"""PostgreSQL access: a small connection pool that is safe under eventlet.

psycopg2 blocks the whole process on I/O unless psycogreen installs its wait callback, so
``make_green()`` is called whenever eventlet has patched the socket module (it has, inside
``nameko run``). The pool hands out connections whose ``search_path`` is the owning service's
schema, so SQL in a service never names another service's tables.

A database that restarts or goes away is a fault, not a bug: a pooled connection the server
has closed is noticed when it is borrowed and replaced, and a connection that breaks while in
use surfaces as ``DatabaseUnavailable`` (a 503 with ``Retry-After`` at the gateway), marked
``retry_safe`` when it broke before the transaction asked to commit.
"""

from __future__ import annotations

import collections
import contextlib
import select
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras

from portal_common import config, jsoncodec
from portal_common.errors import DatabaseUnavailable
from portal_common.prepared import Prepared, PreparingConnection, execute_form, statement_bytes

__all__ = ["CommittingCursor", "Database", "DatabaseUnavailable", "Prepared", "connect", "drop_database",
           "ensure_database", "make_green"]

psycopg2.extras.register_uuid()


#: decodes as ``json.loads`` does, with orjson: event payloads, projections and metadata are jsonb
#: columns, decoded on every read of the log
json_loads = jsoncodec.loads


# every json and jsonb value any connection of this process reads
psycopg2.extras.register_default_json(globally=True, loads=json_loads)
psycopg2.extras.register_default_jsonb(globally=True, loads=json_loads)


def connection_lost(exc: BaseException, conn: Any = None) -> bool:
    """True when ``exc`` means the connection itself is gone (not a refused statement)."""
    if isinstance(exc, psycopg2.InterfaceError):
        return True
    if not isinstance(exc, psycopg2.OperationalError):
        return False
    if conn is not None and conn.closed:
        return True
    return isinstance(exc, psycopg2.errors.AdminShutdown | psycopg2.errors.CrashShutdown
                      | psycopg2.errors.CannotConnectNow) or exc.pgcode is None


def alive(conn: Any) -> bool:
    """Whether an idle pooled connection is still usable, without a round trip.

    An idle connection has nothing to read; when its socket is readable the server has sent
    its goodbye (a restart's ``terminating connection``) or the socket was closed."""
    if conn.closed:
        return False
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError, psycopg2.Error):
        return False
    # psycopg2 reports nothing until the next statement, so anything to read on an idle
    # connection (the goodbye, or an end of file) retires it; no LISTEN is used in the pool
    return not readable


def make_green() -> None:
    """Let psycopg2 yield to other greenlets while waiting on the server."""
    try:
        from eventlet import patcher
    except ImportError:  # pragma: no cover - eventlet is a hard dependency
        return
    if patcher.is_monkey_patched("socket"):
        from psycogreen.eventlet import patch_psycopg

        if psycopg2.extensions.get_wait_callback() is None:
            patch_psycopg()


_IDLE = psycopg2.extensions.TRANSACTION_STATUS_IDLE
_BASE = psycopg2.extensions.connection


class MergedBeginConnection(PreparingConnection):
    """A connection that opens its transactions in the round trip of their first statement.

    psycopg2 sends ``BEGIN`` on its own before the first statement of every transaction: one
    round trip per transaction that carries nothing. Here libpq runs in autocommit and the
    connection does what psycopg2 would, ``BEGIN`` before the first statement when no
    transaction is open, but as ``BEGIN;<statement>`` in one round trip; ``commit()`` and
    ``rollback()`` send ``COMMIT`` / ``ROLLBACK`` when a transaction is open. ``autocommit``
    keeps its meaning (no ``BEGIN`` at all while it is true). Cursors of any kind made from
    the connection (``cur.connection.cursor()`` too) behave alike.

    Its cursors also run statements marked ``Prepared`` by name (``PreparingConnection``).
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        _BASE.autocommit.__set__(self, True)
        self._wants_autocommit = False

    @property
    def autocommit(self) -> bool:  # type: ignore[override]
        return self._wants_autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        self._wants_autocommit = bool(value)

    def needs_begin(self) -> bool:
        return not self._wants_autocommit and self.info.transaction_status == _IDLE

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        factory = kwargs.pop("cursor_factory", None) or self.cursor_factory or psycopg2.extensions.cursor
        kwargs["cursor_factory"] = _merged_cursor_class(factory)
        return super().cursor(*args, **kwargs)

    def commit(self) -> None:
        if self.info.transaction_status != _IDLE:
            with _BASE.cursor(self) as cur:
                cur.execute("COMMIT")

    def rollback(self) -> None:
        if not self.closed and self.info.transaction_status != _IDLE:
            with _BASE.cursor(self) as cur:
                cur.execute("ROLLBACK")


class _MergedBegin:
    """Cursor mix-in of ``MergedBeginConnection``: ``BEGIN;`` in front of a transaction's first
    statement, and a ``Prepared`` statement run by name."""

    def execute(self, query: Any, vars: Any = None) -> Any:
        executed = execute_form(self, query, vars)
        if executed is not None:
            query, vars = executed, None
        if self.connection.needs_begin():
            if isinstance(query, bytes):
                query = b"BEGIN;" + query
            elif isinstance(query, str):
                query = "BEGIN;" + query
            else:  # a psycopg2.sql composition
                query = "BEGIN;" + query.as_string(self)
        return super().execute(query, vars)

    def _begin_alone(self) -> None:
        if self.connection.needs_begin():
            super().execute("BEGIN")

    def executemany(self, query: Any, vars_list: Any) -> Any:
        self._begin_alone()
        return super().executemany(query, vars_list)

    def callproc(self, *args: Any, **kwargs: Any) -> Any:
        self._begin_alone()
        return super().callproc(*args, **kwargs)

    def copy_expert(self, *args: Any, **kwargs: Any) -> Any:
        self._begin_alone()
        return super().copy_expert(*args, **kwargs)

    def copy_from(self, *args: Any, **kwargs: Any) -> Any:
        self._begin_alone()
        return super().copy_from(*args, **kwargs)

    def copy_to(self, *args: Any, **kwargs: Any) -> Any:
        self._begin_alone()
        return super().copy_to(*args, **kwargs)


_MERGED_CLASSES: dict[type, type] = {}


def _merged_cursor_class(factory: type) -> type:
    if issubclass(factory, _MergedBegin):
        return factory
    merged = _MERGED_CLASSES.get(factory)
    if merged is None:
        merged = _MERGED_CLASSES[factory] = type(f"Merged{factory.__name__}", (_MergedBegin, factory), {})
    return merged


class CommittingCursor:
    """A cursor whose next statement also commits its transaction, in the same round trip.

    For a transaction whose last statement is known (a log append): a lock it holds (the
    log's append lock, a counter row) is released without waiting for one more round trip.
    Only the statement's success is reported, not its rows (the last result of the round
    trip is the commit's). A connection lost in that round trip may have committed, so
    ``Database.transaction`` reports it as not safe to run again.
    """

    def __init__(self, cursor: Any):
        self._cursor = cursor

    def execute(self, query: str | bytes, vars: Any = None) -> None:
        cur = self._cursor
        statement = statement_bytes(cur, query, vars)
        with contextlib.suppress(AttributeError):  # a plain psycopg2 connection has no such mark
            cur.connection.commit_sent = True
        cur.execute(statement + b";COMMIT")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


class StatementBatch:
    """A cursor that keeps the statements given to it and sends them all in one round trip
    (``send``), optionally with the transaction's ``COMMIT``.

    For writes whose results the caller does not read (several log appends of one batch, an
    update before them): ``execute`` only records the statement, ``description`` is None (as
    for a round trip whose last result is the commit's), and a failure surfaces in ``send``,
    which then rolls nothing back itself (``Database.transaction`` does)."""

    description = None
    rowcount = -1

    def __init__(self, cursor: Any):
        self._cursor = cursor
        self._statements: list[bytes] = []
        self._after: bytes | None = None
        self.after_row: Any = None

    def execute(self, query: str | bytes, vars: Any = None) -> None:
        self._statements.append(statement_bytes(self._cursor, query, vars))

    def __len__(self) -> int:
        return len(self._statements)

    def query(self, query: str | bytes, vars: Any = None) -> Any:
        """Run the kept statements and then ``query`` in one round trip; returns the cursor,
        whose rows are ``query``'s (a read that needs the writes queued before it)."""
        self.execute(query, vars)
        statements = self._statements
        self._statements = []
        self._cursor.execute(b";".join(statements))
        return self._cursor

    def read_after(self, query: str | bytes, vars: Any = None) -> None:
        """A read for ``send`` to run last in its round trip, after the ``COMMIT`` when there is
        one (a value the writes left in a session setting, which outlives the commit); its first
        row is then ``after_row``."""
        self._after = statement_bytes(self._cursor, query, vars)

    def send(self, commit: bool = False) -> None:
        """Run the kept statements (and ``COMMIT`` with ``commit``, then the ``read_after``
        query) in one round trip."""
        statements = self._statements
        self._statements = []
        after, self._after = self._after, None
        if commit:
            with contextlib.suppress(AttributeError):  # a plain psycopg2 connection has no such mark
                self._cursor.connection.commit_sent = True
            statements = [*statements, b"COMMIT"]
        if after is not None:
            statements = [*statements, after]
        if statements:
            self._cursor.execute(b";".join(statements))
        if after is not None:
            self.after_row = self._cursor.fetchone()


# Refusals that say "not now" rather than "no": the server is full, or restarting.
_RETRYABLE_CONNECT = ("too many clients", "remaining connection slots are reserved",
                      "the database system is starting up", "the database system is shutting down",
                      "Connection refused")


def connect(dsn: str, schema: str | None = None, application_name: str = "portal", **kw: Any):
    """Open one connection with the schema first on the search path.

    A server that is momentarily full, restarting or starting up is asked again with a
    growing pause for up to ``DB_CONNECT_RETRY_SECONDS`` (default 5): opening a connection
    has no side effect, and a burst or a restart should not fail a request outright. Any
    other refusal (wrong password, unknown host) fails at once. Either way the caller gets
    ``DatabaseUnavailable``: nothing was done, so it is safe to try again.
    """
    options = f"-c search_path={schema},public" if schema else ""
    deadline = time.monotonic() + config.env_float("DB_CONNECT_RETRY_SECONDS", 5.0)
    pause = 0.05
    while True:
        try:
            return psycopg2.connect(dsn, options=options, application_name=application_name, **kw)
        except psycopg2.OperationalError as exc:
            message = str(exc)
            if not any(m in message for m in _RETRYABLE_CONNECT) or time.monotonic() + pause > deadline:
                raise DatabaseUnavailable(retry_safe=True) from exc
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


#: every pool of this process, for its metrics (``live_pools``)
_POOLS: weakref.WeakSet[Database] = weakref.WeakSet()


def live_pools() -> list[Database]:
    """The pools of this process not closed yet."""
    return [pool for pool in list(_POOLS) if not pool.closed]


class Database:
    """A bounded pool of connections to one service's schema.

    ``transaction()`` yields a cursor inside a transaction that commits when the block ends
    and rolls back when it raises; a connection that broke is dropped instead of returned.
    A burst opens up to ``size`` connections. Those then left unused for ``idle_timeout``
    seconds (``DB_POOL_IDLE_TIMEOUT``, default 600) are closed when the pool is next used,
    except the ``min_idle`` most recently used (``DB_POOL_MIN_IDLE``, default 4, at most
    ``size``), which stay open however long the service is quiet. Both can be set per service
    (``DOSSIER_DB_POOL_MIN_IDLE``).

    A new connection is dear: the server starts a backend that reads its catalogue, compiles
    the log's functions and plans every statement again, and a filing on it takes about seven
    times as long as on a kept connection (``python -m bench pool``). A pool that closed what a
    burst opened after a short lull paid that again at the next burst, in the requests that
    were already waiting. The sizing (``DB_POOL_SIZE`` per process under the server's
    ``max_connections``) already allows every connection to be open at once; suites that share
    one server set a short timeout and a floor of one instead. ``open_floor()`` opens the floor
    ahead of the first requests (a service does so as it starts), so that a restarted or newly
    added process does not start its backends in its first requests' time.
    """

    def __init__(self, dsn: str, schema: str, size: int = 10, application_name: str = "portal",
                 idle_timeout: float | None = None, min_idle: int | None = None, name: str | None = None):
        self.dsn = dsn
        self.schema = schema
        self.size = size
        self.application_name = application_name
        self.name = name or application_name  # tells a service's pools apart in its metrics
        self.idle_timeout = (config.env_float("DB_POOL_IDLE_TIMEOUT", 600.0, schema) if idle_timeout is None
                             else idle_timeout)
        floor = config.env_int("DB_POOL_MIN_IDLE", 4, schema) if min_idle is None else min_idle
        self.min_idle = max(1, min(floor, size))  # the last one used stays, as it always did
        self._idle: collections.deque[tuple[Any, float]] = collections.deque()  # oldest on the left
        self._idle_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self._opened = 0  # connections open now, idle or borrowed: never more than ``size``
        self._closed = False
        _POOLS.add(self)

    @property
    def idle_connections(self) -> int:
        """How many open connections wait in the pool (for metrics and tests)."""
        return len(self._idle)

    @property
    def open_connections(self) -> int:
        """How many connections the pool holds open, idle or borrowed."""
        return self._opened

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called: a closed pool gives nothing back to its idle list."""
        return self._closed

    def open_floor(self) -> int:
        """Open idle connections until ``min_idle`` wait, and return how many were opened.

        Never opens more than the pool's ``size`` in all, and stops at the first connection the
        server refuses (down, full, restarting): the requests then open theirs as they come,
        as they would have without this. Safe beside requests using the pool.
        """
        opened = 0
        while not self._closed and self._slots.acquire(blocking=False):
            # holding a slot as a borrower does, so that a request meeting an empty pool
            # meanwhile cannot take the total past ``size`` either
            try:
                with self._idle_lock:
                    if len(self._idle) >= self.min_idle or self._opened >= self.size:
                        return opened
                    self._opened += 1
                try:
                    conn = self._new_counted()
                except DatabaseUnavailable:
                    return opened
                if self._closed:  # closed while it connected
                    self._discard(conn)
                    return opened
                opened += 1
                self._give_back(conn)
            finally:
                self._slots.release()
        return opened

    def _new_counted(self):
        """A new connection whose place in ``_opened`` the caller has already taken."""
        try:
            return self._new()
        except BaseException:
            with self._idle_lock:
                self._opened -= 1
            raise

    def _discard(self, conn) -> None:
        """Close a connection the pool is done with, and count it out."""
        with contextlib.suppress(psycopg2.Error):
            conn.close()
        with self._idle_lock:
            self._opened -= 1

    def _take_idle(self):
        """The most recently returned idle connection that is still alive; dead ones (the
        server restarted meanwhile) are closed on the way."""
        while True:
            with self._idle_lock:
                conn = self._idle.pop()[0] if self._idle else None
            if conn is None or alive(conn):
                return conn
            self._discard(conn)

    def _give_back(self, conn) -> None:
        now = time.monotonic()
        stale = []
        with self._idle_lock:
            self._idle.append((conn, now))
            while len(self._idle) > self.min_idle and now - self._idle[0][1] > self.idle_timeout:
                stale.append(self._idle.popleft()[0])
        for old in stale:
            self._discard(old)

    def _new(self):
        return connect(self.dsn, self.schema, self.application_name, connection_factory=MergedBeginConnection)

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        """Borrow a raw connection (no transaction handling)."""
        self._slots.acquire()
        conn = None
        try:
            conn = self._take_idle()
            if conn is None:
                with self._idle_lock:
                    self._opened += 1
                conn = self._new_counted()
            yield conn
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            if conn is not None and not conn.closed:
                with contextlib.suppress(psycopg2.Error):
                    conn.rollback()
            if connection_lost(exc, conn):
                raise DatabaseUnavailable(retry_safe=getattr(exc, "portal_before_commit", False)) from exc
            raise
        except BaseException:
            if conn is not None and not conn.closed:
                with contextlib.suppress(psycopg2.Error):
                    conn.rollback()
            raise
        finally:
            if conn is not None:
                healthy = (
                    not conn.closed
                    and conn.get_transaction_status()
                    == psycopg2.extensions.TRANSACTION_STATUS_IDLE
                )
                if healthy and not self._closed:
                    self._give_back(conn)
                else:
                    self._discard(conn)
            self._slots.release()

    @contextlib.contextmanager
    def transaction(self, dict_rows: bool = True) -> Iterator[Any]:
        """Run a block in one transaction; yields a cursor (rows as dicts by default)."""
        factory = psycopg2.extras.RealDictCursor if dict_rows else None
        with self.connection() as conn:
            conn.commit_sent = False  # set by a caller that sends COMMIT with its last statement
            try:
                try:
                    with conn.cursor(cursor_factory=factory) as cur:
                        yield cur
                except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                    # nothing can have committed (unless the block sent the commit): safe to run again
                    exc.portal_before_commit = not conn.commit_sent
                    raise
                conn.commit()
            except BaseException:
                if not conn.closed:
                    with contextlib.suppress(psycopg2.Error):
                        conn.rollback()
                raise

    @contextlib.contextmanager
    def autocommit(self, dict_rows: bool = True) -> Iterator[Any]:
        """A cursor whose statements each commit as they end, with no transaction around them
        (no ``BEGIN``, no ``COMMIT``): one round trip per statement, for reads and single
        writes that need no other statement's company. A connection lost during a write is not
        safe to run again blindly: the write may have committed."""
        factory = psycopg2.extras.RealDictCursor if dict_rows else None
        with self.connection() as conn:
            conn.autocommit = True
            try:
                with conn.cursor(cursor_factory=factory) as cur:
                    yield cur
            finally:
                conn.autocommit = False

    def statement(self, query: Any, vars: Any = None, dict_rows: bool = True) -> list[Any]:
        """Run one statement on its own (``autocommit``): one round trip where a transaction
        around it takes two. Returns its rows (none for a statement that returns none)."""
        with self.autocommit(dict_rows) as cur:
            cur.execute(query, vars)
            return cur.fetchall() if cur.description is not None else []

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            with self.transaction(dict_rows=False) as cur:
                cur.execute("SELECT 1")
                return cur.fetchone()[0] == 1
        except (psycopg2.Error, DatabaseUnavailable):
            return False

    def close(self) -> None:
        """Close the idle connections; borrowed ones are closed when they come back."""
        self._closed = True
        while (conn := self._take_idle()) is not None:
            self._discard(conn)


def ensure_database(dsn: str) -> bool:
    """Create the database named in ``dsn`` if it does not exist; True when created."""
    params = psycopg2.extensions.parse_dsn(dsn)
    name = params.get("dbname")
    if not name:
        return False
    admin = dict(params, dbname="postgres")
    conn = psycopg2.connect(**admin)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone():
                return False
            try:
                cur.execute(f'CREATE DATABASE "{name}"')
            except (psycopg2.errors.DuplicateDatabase, psycopg2.errors.UniqueViolation):
                return False  # another process created it meanwhile (the race shows as either)
            return True
    finally:
        conn.close()


def drop_database(dsn: str) -> None:
    """Drop the database named in ``dsn`` (test clean-up), ending its sessions first."""
    params = psycopg2.extensions.parse_dsn(dsn)
    name = params["dbname"]
    conn = psycopg2.connect(**dict(params, dbname="postgres"))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        conn.close()
