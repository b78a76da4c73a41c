"""The one way the portal reaches the system: JSON over the gateway's public HTTP API.

One pool of keep-alive connections (urllib3, thread-safe) serves every worker thread. A
problem answer (4xx/5xx) becomes an ``ApiError`` carrying the gateway's stable ``code``, its
Vietnamese and English messages and its per-field errors, so pages can show them beside the
fields.
"""

from __future__ import annotations

import json as jsonlib
from typing import Any
from urllib.parse import urlencode, urlsplit

import urllib3


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


class Response:
    """What the gateway answered: status, body bytes, headers."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, content: bytes, headers):
        self.status_code, self.content, self.headers = status_code, content, headers


class Gateway:
    """A small client of the public API; ``token`` is the signed-in person's access token."""

    def __init__(self, base_url: str, timeout: float = 30.0, connections: int = 16):
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        pool = urllib3.HTTPSConnectionPool if parts.scheme == "https" else urllib3.HTTPConnectionPool
        self._pool = pool(parts.hostname, parts.port, maxsize=connections, block=False,
                          timeout=urllib3.Timeout(connect=5.0, read=timeout), retries=False)
        self._prefix = parts.path.rstrip("/")

    def raw(self, method: str, path: str, *, token: str | None = None, json: Any = None,
            params: dict | None = None, headers: dict | None = None, request_id: str | None = None,
            client_ip: str | None = None) -> Response:
        hdrs = {"Accept": "application/json", **(headers or {})}
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        if request_id:
            hdrs["X-Request-ID"] = request_id
        if client_ip:
            hdrs["X-Forwarded-For"] = client_ip
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        url = self._prefix + path + (f"?{urlencode(clean)}" if clean else "")
        body = None
        if json is not None:
            body = jsonlib.dumps(json, ensure_ascii=False).encode()
            hdrs["Content-Type"] = "application/json"
        try:
            resp = self._pool.urlopen(method, url, body=body, headers=hdrs, redirect=False,
                                      preload_content=True)
        except urllib3.exceptions.HTTPError:
            raise ApiError(503, {"code": "gateway_unreachable"}) from None
        return Response(resp.status, resp.data, resp.headers)

    def call(self, method: str, path: str, **kw: Any) -> Any:
        """The JSON answer of a 2xx, else ``ApiError``."""
        resp = self.raw(method, path, **kw)
        body: Any = None
        if resp.content:
            try:
                body = jsonlib.loads(resp.content)
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
