"""Fixtures of the identity tests: HTTP against the running system, the identity schema of
the run's database, and a test PKI whose root the local identity trusts."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from portal_common.db import Database
from tests.identity.pki import Pki


class Reply:
    def __init__(self, status: int, body: Any, headers):
        self.status, self.body, self.headers = status, body, headers

    def __getitem__(self, key):
        return self.body[key]

    @property
    def code(self) -> str | None:
        return self.body.get("code") if isinstance(self.body, dict) else None

    def __repr__(self) -> str:
        return f"<{self.status} {self.body!r}>"


def http(url: str, method: str = "GET", body: Any = None, token: str | None = None, raw: bytes | None = None,
         content_type: str = "application/json") -> Reply:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            status, payload, hdrs = resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as err:
        status, payload, hdrs = err.code, err.read(), err.headers
    try:
        parsed = json.loads(payload) if payload else None
    except ValueError:
        parsed = payload
    return Reply(status, parsed, hdrs)


@pytest.fixture(scope="session")
def api(gateway_url):
    """``api(method, path, body=None, token=None)`` against the running gateway."""
    def call(method: str, path: str, body: Any = None, token: str | None = None, **kw) -> Reply:
        return http(gateway_url + path, method, body, token, **kw)
    return call


@pytest.fixture(scope="session")
def identity_db(migrated_database):
    db = Database(migrated_database, "identity", size=4)
    yield db
    db.close()


@pytest.fixture(scope="session")
def pki(api) -> Pki:
    """A root CA, an intermediate and leaves; the root is trusted by the running identity."""
    p = Pki()
    reply = api("POST", "/api/v1/dev/trusted-cas", {"certificate_pem": p.root_pem})
    assert reply.status == 201, reply
    return p


def assert_problem(reply: Reply, status: int, code: str | None = None) -> None:
    assert reply.status == status, reply
    assert reply.headers.get("Content-Type", "").startswith("application/problem+json"), reply.headers
    if code is not None:
        assert reply.code == code, reply
