"""The one way the portal reaches the system: JSON over the gateway's public HTTP API.

Each thread keeps its own keep-alive connection pool. A problem answer (4xx/5xx) becomes an
``ApiError`` carrying the gateway's stable ``code``, its Vietnamese and English messages and
its per-field errors, so pages can show them beside the fields.
"""

from __future__ import annotations

import threading
from typing import Any

import requests


class ApiError(Exception):
    """The gateway answered with a problem (or could not be reached: status 503)."""

    def __init__(self, status: int, body: dict | None = None):
        body = body if isinstance(body, dict) else {}
        super().__init__(f"{status} {body.get('code', '')}")
        self.status = status
        self.code = str(body.get("code") or "")
        self.body = body
        self.message_vi = str(body.get("message_vi") or "")
        self.message_en = str(body.get("message_en") or body.get("detail") or "")
        self.errors = body.get("errors") if isinstance(body.get("errors"), list) else []
        self.retry_after = body.get("retry_after")

    def message(self, lang: str) -> str:
        return self.message_en if lang == "en" and self.message_en else self.message_vi or self.message_en

    def field_errors(self) -> dict[str, str]:
        """``{field: message}`` of a validation problem (the field path's last part)."""
        out: dict[str, str] = {}
        for entry in self.errors:
            if isinstance(entry, dict) and entry.get("field"):
                out.setdefault(str(entry["field"]).split(".")[-1], str(entry.get("message", "")))
        return out


class Gateway:
    """A small client of the public API; ``token`` is the signed-in person's access token."""

    def __init__(self, base_url: str, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # the gateway is named explicitly; never through a proxy
            self._local.session = session
        return session

    def raw(self, method: str, path: str, *, token: str | None = None, json: Any = None,
            params: dict | None = None, headers: dict | None = None, request_id: str | None = None,
            client_ip: str | None = None) -> requests.Response:
        hdrs = {"Accept": "application/json", **(headers or {})}
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        if request_id:
            hdrs["X-Request-ID"] = request_id
        if client_ip:
            hdrs["X-Forwarded-For"] = client_ip
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        try:
            return self._session().request(method, self.base_url + path, json=json, params=clean,
                                           headers=hdrs, timeout=self.timeout, allow_redirects=False)
        except requests.RequestException:
            raise ApiError(503, {"code": "gateway_unreachable"}) from None

    def call(self, method: str, path: str, **kw: Any) -> Any:
        """The JSON answer of a 2xx, else ``ApiError``."""
        resp = self.raw(method, path, **kw)
        body: Any = None
        if resp.content:
            try:
                body = resp.json()
            except ValueError:
                body = None
        if resp.status_code >= 400:
            error = ApiError(resp.status_code, body)
            if error.retry_after is None and resp.headers.get("Retry-After"):
                error.retry_after = resp.headers["Retry-After"]
            raise error
        return body

    def get(self, path: str, **kw: Any) -> Any:
        return self.call("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.call("POST", path, json=body if body is not None else {}, **kw)
