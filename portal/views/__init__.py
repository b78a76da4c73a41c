"""Helpers every page uses: the gateway client, the signed-in person's tokens, and sign-in guards."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from flask import current_app, g, redirect, request, session, url_for

from portal.api import ApiError, Gateway
from portal.config import Settings


def gateway() -> Gateway:
    return current_app.extensions["portal.gateway"]


def settings() -> Settings:
    return current_app.extensions["portal.settings"]


def _client_ip() -> str | None:
    return request.remote_addr


def public(method: str, path: str, **kw: Any) -> Any:
    """A call that needs no sign-in; its time is added to the page's ``api_ms`` in the access log."""
    started = time.perf_counter()
    try:
        return gateway().call(method, path, request_id=g.get("request_id"), client_ip=_client_ip(), **kw)
    finally:
        g.api_ms = g.get("api_ms", 0.0) + (time.perf_counter() - started) * 1000


def _authed(key: str, method: str, path: str, refresh: bool = True, **kw: Any) -> Any:
    tokens = session.get(key) or {}
    if not tokens.get("access_token"):
        raise ApiError(401, {"code": "unauthorized"})
    try:
        return public(method, path, token=tokens["access_token"], **kw)
    except ApiError as err:
        if err.status != 401 or not tokens.get("refresh_token") or not refresh:
            raise
    # The access token expired: trade the refresh token once, then try again.
    try:
        fresh = public("POST", "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    except ApiError:
        session.pop(key, None)
        raise ApiError(401, {"code": "unauthorized"}) from None
    session[key] = {"access_token": fresh["access_token"], "refresh_token": fresh.get("refresh_token")}
    return public(method, path, token=fresh["access_token"], **kw)


def citizen(method: str, path: str, **kw: Any) -> Any:
    """A call as the signed-in citizen (or business)."""
    return _authed("tokens", method, path, **kw)


def officer(method: str, path: str, **kw: Any) -> Any:
    """A call as the signed-in agency officer at the desk."""
    return _authed("officer_tokens", method, path, **kw)


def signed_in(view: Callable) -> Callable:
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not session.get("tokens"):
            return redirect(url_for("account.sign_in", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)
    return wrapper


def desk_signed_in(view: Callable) -> Callable:
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not session.get("officer_tokens"):
            return redirect(url_for("desk.sign_in"))
        return view(*args, **kwargs)
    return wrapper


def lang() -> str:
    from flask_babel import get_locale

    return str(get_locale() or "vi")
