"""schemathesis against the running gateway: every operation of /openapi.json, with generated
valid and invalid input, must answer without a server error, with a documented status and
content type, and a body that matches its documented schema.

Bounded to run in a few minutes on two cores: ``SCHEMATHESIS_EXAMPLES`` examples per operation
(default 12), no shrinking, no example database. Operators and editors are included: when the
local stand-ins issue staff tokens, the run repeats signed in as each role.

A second pass sends what generated input does not: for every operation with a JSON body, JSON
nested 10,000 deep, a lone surrogate (``"\\ud800"``) in each field and in a key, NaN,
Infinity, -Infinity and 1e400, and a chunked body past the size limit; and surrogate bytes in
every query and path parameter. No answer may be a 5xx, and no hostile body a 2xx; the counts
are printed (``pytest -s``): ``fuzz: N requests, K 5xx``.
"""

from __future__ import annotations

import http.client
import os
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "12"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


def _tokens(gateway_url: str) -> dict[str, str]:
    """Bearer tokens per role: a citizen registered the real way, staff from the local stand-in."""
    out = {}
    try:
        from tests.support.accounts import register_citizen

        out["citizen"] = register_citizen(gateway_url)["access_token"]
    except Exception:  # the helpers or the stand-ins are not there: run the other roles
        pass
    for role, extra in (("officer", {"agency_code": "G01"}), ("operator", {}), ("editor", {})):
        try:
            resp = requests.post(f"{gateway_url}/api/v1/dev/tokens", json={"role": role, **extra}, timeout=10)
        except requests.RequestException:
            continue
        if resp.status_code in (200, 201) and "access_token" in resp.json():
            out[role] = resp.json()["access_token"]
    return out


def _exercise(operation, gateway_url: str, session: requests.Session, headers: dict[str, str]):
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def exercise(case):
        case.call_and_validate(base_url=gateway_url, session=session, headers=headers, checks=CHECKS,
                               timeout=30)

    return exercise


def _run(schema, gateway_url: str, headers: dict[str, str]) -> list[str]:
    session = requests.Session()
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        try:
            _exercise(operation, gateway_url, session, headers)()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # collect every operation's failure (groups too), then report them all
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    return failures


@pytest.fixture
def roles(gateway_url) -> list[tuple[str, dict[str, str]]]:
    """(role, headers) for a signed-out caller and each role with a token, fresh for each test
    (generated input signs the citizen out everywhere, for one).

    Generated sign-ins fail by the hundred: they come "from" addresses of their own (the suite's
    gateway trusts 127.0.0.1 as a proxy), so identity's per-address lockout never hits the
    other tests' 127.0.0.1.
    """
    out = [("anonymous", {"X-Forwarded-For": "198.51.100.1"})]
    for n, (role, token) in enumerate(_tokens(gateway_url).items(), start=2):
        out.append((role, {"Authorization": f"Bearer {token}", "X-Forwarded-For": f"198.51.100.{n}"}))
    return out


def test_every_operation_survives_generated_input(gateway_url, roles):
    schema = schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")
    assert len(list(schema.get_all_operations())) >= 6
    failures: list[str] = []
    for role, headers in roles:
        failures += [f"[{role}] {f}" for f in _run(schema, gateway_url, headers)]
    assert not failures, "\n\n".join(failures)


# -- hostile input on every operation -----------------------------------------------------------

MAX_BODY_BYTES = 12 * 1024 * 1024  # the gateway's default (the suite's system does not change it)
DEEP = "[" * 10_000 + "]" * 10_000
LONE = '"An\\ud800"'  # JSON text: a lone high surrogate, as the escape json decodes
NON_FINITE = ("NaN", "Infinity", "-Infinity", "1e400")
# Query and path values: the bytes of U+D800 as UTF-8 would have them (invalid UTF-8), a lone
# continuation byte, and the JSON escape as plain text.
SURROGATE_PARAMS = ("An%ED%A0%80", "%ED%B0%80x", "An%5Cud800")


def _fill(path: str, parameters: list[dict], value: str | None = None) -> str:
    """The path with every parameter given a value of its type (``value`` for text ones)."""
    for param in parameters:
        if param.get("in") == "path":
            kind = param.get("schema", {}).get("type")
            path = path.replace("{" + param["name"] + "}", "1" if kind == "integer" else (value or "fuzz-1"))
    return path


def _properties(spec: dict, body: dict) -> list[str]:
    schema = body.get("schema", {})
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return list(schema.get("properties", {})) or ["field"]


def _hostile_bodies(fields: list[str]) -> Iterator[tuple[str, bytes]]:
    """(case, JSON text) of each hostile body for an operation whose body has ``fields``."""
    yield "deep", DEEP.encode()
    yield f"deep in {fields[0]}", f'{{"{fields[0]}": {DEEP}}}'.encode()
    for name in fields:
        yield f"surrogate in {name}", f'{{"{name}": {LONE}}}'.encode()
    yield "surrogate in a key", b'{"k\\ud800": 1}'
    yield "surrogate in a list", f'{{"{fields[0]}": ["ok", {LONE}]}}'.encode()
    for number in NON_FINITE:
        yield f"{number} in {fields[0]}", f'{{"{fields[0]}": {number}}}'.encode()


def _oversize() -> Iterator[bytes]:
    """A chunked body one block past the limit (1 MB chunks of one long JSON string)."""
    block = b"x" * (1024 * 1024)
    yield b'{"note": "'
    for _ in range(MAX_BODY_BYTES // len(block) + 1):
        yield block
    yield b'"}'


def _chunked(gateway_url: str, method: str, path: str, headers: dict[str, str]) -> int:
    target = urllib.parse.urlsplit(gateway_url)
    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
    try:
        conn.request(method, path, body=_oversize(), encode_chunked=True,
                     headers={**headers, "Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def _hostile_requests(spec: dict) -> Iterator[tuple[str, str, str, bytes | None]]:
    """(case, method, path with query, body) of every hostile request but the chunked ones."""
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            params = op.get("parameters", [])
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            url = _fill(path, params)
            if body is not None:
                for case, raw in _hostile_bodies(_properties(spec, body)):
                    yield case, method.upper(), url, raw
            empty = b"{}" if body is not None else None
            for value in SURROGATE_PARAMS:
                if any(p.get("in") == "path" and p.get("schema", {}).get("type") != "integer" for p in params):
                    yield f"path {value}", method.upper(), _fill(path, params, value), empty
                for param in params:
                    if param.get("in") == "query":
                        yield f"query {param['name']}={value}", method.upper(), f"{url}?{param['name']}={value}", empty


def test_every_operation_survives_hostile_input(gateway_url, roles):
    """Every JSON-body operation, as every role, with each hostile body; every query and path
    parameter with surrogate bytes: never a 5xx, never a 2xx for a hostile body, and a chunked
    body past the limit always a 413."""
    spec = requests.get(f"{gateway_url}/openapi.json", timeout=30).json()
    json_ops = [(m.upper(), _fill(p, op.get("parameters", [])))
                for p, ops in spec["paths"].items() for m, op in ops.items()
                if "application/json" in op.get("requestBody", {}).get("content", {})]
    assert len(json_ops) >= 10
    started = time.monotonic()
    sent, statuses, failures = 0, Counter(), []
    deep_refused: set[tuple[str, str]] = set()  # operations some role got past auth with: 400 json_too_deep

    def seen(role: str, case: str, method: str, path: str, status: int, text: str, body: bool) -> None:
        nonlocal sent
        sent += 1
        statuses[status] += 1
        if status >= 500 or (body and status < 300):
            failures.append(f"[{role}] {method} {path} ({case}): {status} {text[:300]}")

    for role, headers in roles:
        session = requests.Session()
        for case, method, path, raw in _hostile_requests(spec):
            h = {**headers, "Content-Type": "application/json"} if raw is not None else headers
            resp = session.request(method, f"{gateway_url}{path}", data=raw, headers=h, timeout=60)
            seen(role, case, method, path, resp.status_code, resp.text, not case.startswith(("path", "query")))
            if case == "deep" and resp.status_code == 400 and resp.json().get("code") == "json_too_deep":
                deep_refused.add((method, path))
        for method, path in json_ops:  # read (and refused) before routing: 413 whoever asks
            status = _chunked(gateway_url, method, path, headers)
            seen(role, "chunked past the limit", method, path, status, "", True)
            if status != 413:
                failures.append(f"[{role}] {method} {path} (chunked past the limit): {status}, not 413")
    by_status = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
    fives = sum(n for s, n in statuses.items() if s >= 500)
    print(f"fuzz: {sent} requests, {fives} 5xx")
    print(f"fuzz: {len(json_ops)} JSON-body operations, {len(roles)} roles, {time.monotonic() - started:.1f}s; "
          f"statuses {by_status}")
    assert not failures, "\n".join(failures[:50])
    # every operation with a body schema had the body read as some role (the one without, the
    # multipart upload documented as an object, reads no JSON)
    typed = {(m.upper(), _fill(p, op.get("parameters", []))) for p, ops in spec["paths"].items()
             for m, op in ops.items()
             if "$ref" in op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})}
    assert typed and typed <= deep_refused, sorted(typed - deep_refused)
