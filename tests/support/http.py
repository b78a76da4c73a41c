"""JSON over HTTP to the running system's gateway, as a client sees it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def http(url: str, method: str = "GET", body: Any = None, token: str | None = None,
         headers: dict[str, str] | None = None, raw: bytes | None = None,
         content_type: str = "application/json") -> tuple[int, Any, Any]:
    """One request; returns ``(status, parsed JSON or bytes, headers)`` for any status."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    h = {"Content-Type": content_type, **(headers or {})}
    if token:
        h["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            payload, status, got = resp.read(), resp.status, resp.headers
    except urllib.error.HTTPError as err:
        payload, status, got = err.read(), err.code, err.headers
    kind = got.get("Content-Type", "") if got else ""
    return status, (json.loads(payload) if payload and "json" in kind else payload), got
