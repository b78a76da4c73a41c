"""Server-side sessions, CSRF tokens and the security headers of every page.

The browser holds only a random session id (HttpOnly, SameSite=Lax, Secure over TLS); the
gateway's tokens, drafts and uploads stay on the server (``portal.sessions``). Every POST form
carries the session's CSRF token; a missing or wrong one is refused before any view runs.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import Response, abort, request, session

from portal.sessions import Sessions

CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
       "base-uri 'self'; frame-ancestors 'none'")


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


def _interface() -> Sessions:
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
