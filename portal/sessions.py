"""Where the portal keeps its server-side sessions.

The browser holds only a random session id; what the session holds (the gateway's tokens, drafts
with their uploads, the CSRF token) stays on the server. With ``PORTAL_SESSION_DATABASE_URL``
set, sessions live in a PostgreSQL table of the portal's own (schema ``portal``), so any number
of portal processes or pods serve the same citizen and a restart signs nobody out; without it
they live in this process's memory (one process, local development).

The table keys each session by the SHA-256 of its id, never the id itself: someone who can read
the table cannot take a session over with what they read there.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from typing import Any

from flask import Flask, request
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

COOKIE = "portal_sid"
MAX_SESSIONS = 20_000  # in memory: the longest idle go first beyond this
MAX_SESSION_BYTES = 48 * 1024 * 1024  # in the table: a session's JSON (drafts carry their uploads)
SWEEP_EVERY_S = 60.0  # how often one process deletes expired rows

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS portal;
CREATE TABLE IF NOT EXISTS portal.sessions (
    sid_hash   bytea PRIMARY KEY,
    data       jsonb NOT NULL,
    touched_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS sessions_touched_at ON portal.sessions (touched_at);
"""


class SessionStoreUnavailable(Exception):
    """The session table cannot be reached: the page answers 503, nothing is lost."""


class ServerSession(CallbackDict, SessionMixin):
    def __init__(self, initial: dict | None = None, sid: str | None = None, new: bool = False):
        def on_update(self_):
            self_.modified = True

        super().__init__(initial, on_update)
        self.sid = sid
        self.new = new
        self.modified = False
        self.unavailable = False  # the store could not be read: the request is refused


class Sessions(SessionInterface):
    """Open and save sessions by the id in the ``portal_sid`` cookie; subclasses keep them."""

    def __init__(self, ttl: int):
        self.ttl = ttl

    def open_session(self, app: Flask, request) -> ServerSession:
        sid = request.cookies.get(COOKIE, "")
        try:
            found = self.load(sid) if 20 <= len(sid) <= 100 else None
        except SessionStoreUnavailable:
            # Flask's error handlers do not see a failure here: the view is refused instead
            # (``refuse_without_store``) and nothing is saved.
            unavailable = ServerSession(sid=sid, new=False)
            unavailable.unavailable = True
            return unavailable
        if found is not None:
            return ServerSession(found, sid)
        return ServerSession(sid=secrets.token_urlsafe(32), new=True)

    def save_session(self, app: Flask, session: ServerSession, response) -> None:
        if session.unavailable:
            return
        try:
            if not session:
                if not session.new:
                    self.end(session.sid)
                    response.delete_cookie(COOKIE, path="/")
                return
            if not (session.new or session.modified):
                return  # unchanged: reading it already kept it alive (views never change it in place)
            self.store(session.sid, dict(session))
        except SessionStoreUnavailable:  # the page was made but what it changed is not kept
            response.status_code = 503
            response.headers["Retry-After"] = "30"
            response.set_data(b"")
            return
        if session.new or session.modified:
            response.set_cookie(COOKIE, session.sid, httponly=True, samesite="Lax", secure=request.is_secure,
                                path="/")

    def load(self, sid: str) -> dict | None:
        """The session's data if it exists and was used within ``ttl`` seconds (touching it)."""
        raise NotImplementedError

    def store(self, sid: str, data: dict) -> None:
        raise NotImplementedError

    def end(self, sid: str) -> None:
        raise NotImplementedError


class MemorySessions(Sessions):
    """Sessions in a dict of this process, ended after ``ttl`` idle seconds."""

    def __init__(self, ttl: int):
        super().__init__(ttl)
        self._data: dict[str, tuple[float, dict]] = {}
        self._lock = threading.Lock()

    def load(self, sid: str) -> dict | None:
        now = time.monotonic()
        with self._lock:
            found = self._data.get(sid)
            if found and now - found[0] < self.ttl:
                self._data[sid] = (now, found[1])
                return found[1]
        return None

    def store(self, sid: str, data: dict) -> None:
        with self._lock:
            if len(self._data) >= MAX_SESSIONS and sid not in self._data:
                self._expire()
            self._data[sid] = (time.monotonic(), data)

    def _expire(self) -> None:
        now = time.monotonic()
        for sid in [s for s, (t, _) in self._data.items() if now - t >= self.ttl]:
            del self._data[sid]
        while len(self._data) >= MAX_SESSIONS:
            del self._data[min(self._data, key=lambda s: self._data[s][0])]

    def end(self, sid: str) -> None:
        with self._lock:
            self._data.pop(sid, None)


class DatabaseSessions(Sessions):
    """Sessions in ``portal.sessions``, shared by every portal process that uses the database."""

    def __init__(self, ttl: int, dsn: str, max_connections: int = 8):
        super().__init__(ttl)
        from psycopg2.pool import ThreadedConnectionPool

        self._pool = ThreadedConnectionPool(1, max_connections, dsn)
        self._last_sweep = 0.0
        self._sweep_lock = threading.Lock()
        self._create_table()

    def _create_table(self) -> None:
        import psycopg2

        for attempt in range(3):  # processes starting together race on CREATE ... IF NOT EXISTS
            try:
                self._run(lambda cur: cur.execute(SCHEMA))
                return
            except psycopg2.IntegrityError:
                if attempt == 2:
                    raise

    def _run(self, work) -> Any:
        import psycopg2

        try:
            conn = self._pool.getconn()
        except psycopg2.Error as exc:
            raise SessionStoreUnavailable(str(exc)) from None
        broken = False
        try:
            with conn, conn.cursor() as cur:
                return work(cur)
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            broken = True
            raise SessionStoreUnavailable(str(exc)) from None
        finally:
            self._pool.putconn(conn, close=broken or conn.closed != 0)

    def load(self, sid: str) -> dict | None:
        def read(cur) -> dict | None:
            cur.execute("UPDATE portal.sessions SET touched_at = now() WHERE sid_hash = %s "
                        "AND touched_at > now() - make_interval(secs => %s) RETURNING data",
                        (_digest(sid), self.ttl))
            row = cur.fetchone()
            return row[0] if row else None

        return self._run(read)

    def store(self, sid: str, data: dict) -> None:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        if len(text) > MAX_SESSION_BYTES:
            raise ValueError("session too large")

        def write(cur) -> None:
            cur.execute("INSERT INTO portal.sessions (sid_hash, data) VALUES (%s, %s) ON CONFLICT (sid_hash) "
                        "DO UPDATE SET data = excluded.data, touched_at = now()", (_digest(sid), text))

        self._run(write)
        self._sweep()

    def end(self, sid: str) -> None:
        self._run(lambda cur: cur.execute("DELETE FROM portal.sessions WHERE sid_hash = %s", (_digest(sid),)))

    def _sweep(self) -> None:
        """Delete expired sessions, at most once a ``SWEEP_EVERY_S`` per process."""
        now = time.monotonic()
        with self._sweep_lock:
            if now - self._last_sweep < SWEEP_EVERY_S:
                return
            self._last_sweep = now
        self._run(lambda cur: cur.execute(
            "DELETE FROM portal.sessions WHERE touched_at < now() - make_interval(secs => %s)", (self.ttl,)))


def _digest(sid: str) -> bytes:
    return hashlib.sha256(sid.encode("utf-8", "replace")).digest()


def refuse_without_store() -> None:
    """Before every view: refuse (503) when the session could not be read."""
    from flask import session

    if getattr(session, "unavailable", False):
        raise SessionStoreUnavailable("the session store cannot be reached")


def session_store(ttl: int, database_url: str) -> Sessions:
    """The store the settings ask for: the database when a URL is given, else memory."""
    return DatabaseSessions(ttl, database_url) if database_url else MemorySessions(ttl)
