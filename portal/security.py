"""Server-side sessions, CSRF tokens and the security headers of every page.

The browser holds only a random session id (HttpOnly, SameSite=Lax, Secure over TLS); the
gateway's tokens, drafts and uploads stay in this process's memory. Every POST form carries
the session's CSRF token; a missing or wrong one is refused before any view runs.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from typing import Any

from flask import Flask, Response, abort, request, session
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

COOKIE = "portal_sid"
MAX_SESSIONS = 20_000

CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
       "base-uri 'self'; frame-ancestors 'none'")


class ServerSession(CallbackDict, SessionMixin):
    def __init__(self, initial: dict | None = None, sid: str | None = None, new: bool = False):
        def on_update(self_):
            self_.modified = True

        super().__init__(initial, on_update)
        self.sid = sid
        self.new = new
        self.modified = False


class MemorySessions(SessionInterface):
    """Sessions in a dict keyed by an unguessable id, ended after ``ttl`` idle seconds."""

    def __init__(self, ttl: int):
        self.ttl = ttl
        self._data: dict[str, tuple[float, dict]] = {}
        self._lock = threading.Lock()

    def open_session(self, app: Flask, request) -> ServerSession:
        sid = request.cookies.get(COOKIE, "")
        now = time.monotonic()
        with self._lock:
            found = self._data.get(sid) if sid else None
            if found and now - found[0] < self.ttl:
                self._data[sid] = (now, found[1])
                return ServerSession(found[1], sid)
        return ServerSession(sid=secrets.token_urlsafe(32), new=True)

    def save_session(self, app: Flask, session: ServerSession, response) -> None:
        secure = request.is_secure
        if not session:
            if not session.new:
                with self._lock:
                    self._data.pop(session.sid, None)
                response.delete_cookie(COOKIE, path="/")
            return
        with self._lock:
            if len(self._data) >= MAX_SESSIONS and session.sid not in self._data:
                self._expire()
            self._data[session.sid] = (time.monotonic(), dict(session))
        if session.new or session.modified:
            response.set_cookie(COOKIE, session.sid, httponly=True, samesite="Lax", secure=secure, path="/")

    def _expire(self) -> None:
        now = time.monotonic()
        for sid in [s for s, (t, _) in self._data.items() if now - t >= self.ttl]:
            del self._data[sid]
        while len(self._data) >= MAX_SESSIONS:  # still full: the longest idle go first
            del self._data[min(self._data, key=lambda s: self._data[s][0])]

    def end(self, sid: str) -> None:
        with self._lock:
            self._data.pop(sid, None)


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Refuse a POST whose form does not carry this session's token (400)."""
    if request.method != "POST":
        return
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not sent or not hmac.compare_digest(str(sent), str(expected)):
        abort(400, description="csrf")


def renew_session() -> None:
    """A new id after signing in or out, so an id planted before sign-in is worthless."""
    kept: dict[str, Any] = {k: v for k, v in session.items() if k in ("lang",)}
    old_sid = session.sid
    session.clear()
    interface = _interface()
    interface.end(old_sid)
    session.sid = secrets.token_urlsafe(32)
    session.new = True
    session.update(kept)
    session["csrf"] = secrets.token_urlsafe(32)


def _interface() -> MemorySessions:
    from flask import current_app

    return current_app.session_interface  # type: ignore[return-value]


def security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if response.mimetype == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")
    return response
