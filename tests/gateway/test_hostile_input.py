"""Hostile input on the endpoints that write (dossier submission, mobile registration, sign-in),
sent over real HTTP to the running system: each case gets one exact 4xx problem, and nothing
is written (no dossier, no registration, no sign-in attempt, no one-time code sent).

The rules (gateway/http/json_body.py, gateway/http/server.py):

- JSON nested deeper than 64: 400 ``json_too_deep``;
- a lone surrogate (``"\\ud800"``) in a key or a string: 422 ``validation_failed`` naming the field;
- ``NaN``, ``Infinity``, ``-Infinity`` or ``1e400``: 422 ``validation_failed`` naming the field;
- a chunked body past MAX_BODY_BYTES: 413 ``payload_too_large``; a chunked body within it is
  read like any other; a ``Content-Length`` shorter than what is sent: only that much is read.

Identity refuses lone surrogates at its RPC boundary too (the contract schemas), so a caller
that is not the gateway gets a 422-class ``InvalidInput`` rather than a server error.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
import requests
from nameko.standalone.rpc import ClusterRpcProxy

from portal_common.errors import InvalidInput
from tests.support import accounts
from tests.support.filings import first_office_filing

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

PROCEDURE = "1.001193"
MAX_BODY_BYTES = 12 * 1024 * 1024  # the gateway's default (the suite's system does not change it)
SURROGATE = "\\ud800"  # as written in the JSON text: the escape, which json decodes to U+D800
LONE = "Not valid Unicode text"
NOT_FINITE = "Not a finite number"
FORWARDED = {"X-Forwarded-For": "198.51.100.231"}  # identity's per-address lockout: not 127.0.0.1's


# -- helpers ---------------------------------------------------------------------------------


def deep(levels: int, inner: str = "1") -> str:
    """JSON text of ``levels`` nested arrays and objects (half each), well-formed."""
    opened, closed = [], []
    for i in range(levels):
        if i % 2:
            opened.append('{"k":')
            closed.append("}")
        else:
            opened.append("[")
            closed.append("]")
    return "".join(opened) + inner + "".join(reversed(closed))


def with_field(body: dict, path: str, raw: str) -> bytes:
    """``body`` as JSON text with the value at ``path`` (dotted) replaced by the raw JSON ``raw``
    (a surrogate escape, NaN, 1e400, deep nesting: things json.dumps would not write)."""
    marker = f"@@{uuid.uuid4().hex}@@"
    text = json.dumps(with_field_dict(body, path, marker), ensure_ascii=False)
    return text.replace(json.dumps(marker), raw).encode()


def with_field_dict(body: dict, path: str, value: Any) -> dict:
    """A copy of ``body`` with ``value`` at ``path`` (dotted)."""
    body = json.loads(json.dumps(body))
    target = body
    *parents, last = path.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value
    return body


def post(url: str, raw: bytes, token: str | None = None, **headers: str) -> requests.Response:
    h = {"Content-Type": "application/json", **FORWARDED, **headers}
    if token:
        h["Authorization"] = f"Bearer {token}"
    return requests.post(url, data=raw, headers=h, timeout=60)


def problem(resp_status: int, body: dict, content_type: str, status: int, code: str) -> dict:
    assert (resp_status, body.get("code")) == (status, code), body
    assert content_type.startswith("application/problem+json"), content_type
    assert body["status"] == status and body["message_vi"] and body["message_en"]
    return body


def check(resp: requests.Response, status: int, code: str, field: str | None = None,
          message: str | None = None) -> dict:
    body = problem(resp.status_code, resp.json(), resp.headers.get("Content-Type", ""), status, code)
    if field is not None:
        assert [e["field"] for e in body["errors"]] == [field], body["errors"]
        assert message is None or body["errors"][0]["message"].startswith(message), body["errors"]
    return body


def chunked(url: str, path: str, parts: Iterator[bytes], token: str | None = None) -> tuple[int, dict, str]:
    """POST ``parts`` with Transfer-Encoding: chunked (no Content-Length)."""
    target = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
    headers = {"Content-Type": "application/json", **FORWARDED}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request("POST", path, body=parts, headers=headers, encode_chunked=True)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read()), resp.getheader("Content-Type", "")
    finally:
        conn.close()


def oversize_parts(total: int) -> Iterator[bytes]:
    """A JSON object of ``total`` bytes (one long string), in 1 MB chunks."""
    head, tail = b'{"form": {"note": "', b'"}}'
    block = b"x" * (1024 * 1024)
    yield head
    left = total - len(head) - len(tail)
    while left > 0:
        yield block[:left]
        left -= len(block)
    yield tail


def short_length(url: str, path: str, declared: bytes, extra: bytes, token: str | None = None) -> tuple[int, dict]:
    """Declare a Content-Length covering ``declared`` only, then send ``extra`` right after it."""
    target = urllib.parse.urlsplit(url)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (f"POST {path} HTTP/1.1\r\nHost: {target.netloc}\r\nContent-Type: application/json\r\n"
            f"X-Forwarded-For: {FORWARDED['X-Forwarded-For']}\r\n{auth}"
            f"Content-Length: {len(declared)}\r\n\r\n").encode()
    with socket.create_connection((target.hostname, target.port), timeout=60) as sock:
        sock.sendall(head + declared + extra)
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        return resp.status, json.loads(resp.read())


# -- the system, the people, what was written -------------------------------------------------


@pytest.fixture(scope="module")
def citizen(gateway_url) -> dict:
    return accounts.register_citizen(gateway_url)


@pytest.fixture(scope="module")
def filing(gateway_url) -> dict:
    return first_office_filing(gateway_url, PROCEDURE, "Phạm Thị D")


@pytest.fixture(scope="module")
def db(migrated_database):
    conn = psycopg2.connect(migrated_database)
    conn.autocommit = True
    yield conn
    conn.close()


def one(db, sql: str, *args: Any) -> Any:
    with db.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()[0]


def dossiers_of(gateway_url: str, token: str) -> list[str]:
    resp = requests.get(f"{gateway_url}/api/v1/dossiers", params={"page_size": 100},
                        headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert resp.status_code == 200, resp.text
    return [item["code"] for item in resp.json()["items"]]


def sms_to(gateway_url: str, phone: str) -> int:
    return len(accounts.call(f"{gateway_url}/api/v1/dev/sms-outbox?phone={phone}&limit=200")["items"])


@pytest.fixture
def no_dossier_written(gateway_url, citizen, db):
    """The citizen's dossiers and the dossier log are the same after the test as before."""
    before = (dossiers_of(gateway_url, citizen["access_token"]), one(db, "SELECT count(*) FROM dossier.events"),
              one(db, "SELECT count(*) FROM dossier.owner_dossiers WHERE owner_id = %s", citizen["account_id"]))
    yield
    after = (dossiers_of(gateway_url, citizen["access_token"]), one(db, "SELECT count(*) FROM dossier.events"),
             one(db, "SELECT count(*) FROM dossier.owner_dossiers WHERE owner_id = %s", citizen["account_id"]))
    assert after == before


@pytest.fixture
def newcomer(gateway_url, db):
    """A person the carrier knows (so a clean registration would go ahead) who must end the
    test with no registration started and no code sent."""
    person = accounts.random_person()
    accounts.add_carrier_record(gateway_url, person["phone"], person["cccd"])
    yield person
    assert one(db, "SELECT count(*) FROM identity.registrations WHERE identifier = %s OR phone = %s",
               person["cccd"], person["phone"]) == 0
    assert sms_to(gateway_url, person["phone"]) == 0


@pytest.fixture
def no_sign_in_written(gateway_url, citizen, db):
    """No sign-in started, failed or counted for the citizen, and no code sent."""

    def state():
        return (one(db, "SELECT count(*) FROM identity.logins WHERE account_id = %s", citizen["account_id"]),
                one(db, "SELECT count(*) FROM identity.signin_failures"),
                one(db, "SELECT count(*) FROM identity.events WHERE stream_id = %s",
                    f"account-{citizen['account_id']}"),
                sms_to(gateway_url, citizen["phone"]))

    before = state()
    yield
    assert state() == before


def sign_in_body(citizen: dict) -> dict:
    return {"method": "password", "cccd": citizen["cccd"], "password": citizen["password"]}


def registration_body(person: dict) -> dict:
    return {k: person[k] for k in ("cccd", "full_name", "date_of_birth", "gender", "phone", "password")}


# -- deep nesting ----------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["form.x", "applicant.full_name", "_whole"])
def test_deep_nesting_on_submit(gateway_url, citizen, filing, no_dossier_written, where):
    raw = deep(10_000).encode() if where == "_whole" else with_field(filing, where, deep(10_000))
    resp = post(f"{gateway_url}/api/v1/dossiers", raw, citizen["access_token"], **{"Idempotency-Key": uuid.uuid4().hex})
    body = check(resp, 400, "json_too_deep")
    assert body["max_depth"] == 64
    assert body["message_vi"] == "Nội dung JSON gửi lên lồng nhau quá nhiều cấp."
    assert body["message_en"] == "The JSON body is nested more than 64 levels deep."


def test_depth_limit_is_exactly_64(gateway_url, citizen, filing, no_dossier_written):
    url, token = f"{gateway_url}/api/v1/dossiers", citizen["access_token"]
    # the body object is level 1, form level 2: 62 more levels inside reach 64 exactly
    at_limit = post(url, with_field(filing, "form.x", deep(62)), token)
    check(at_limit, 422, "validation_failed", "form")  # parsed: the form's own rule refuses a nested value
    check(post(url, with_field(filing, "form.x", deep(63)), token), 400, "json_too_deep")
    # brackets inside strings are text, not nesting
    text = post(url, with_field(filing, "form.x", json.dumps("[{" * 5000)), token)
    check(text, 422, "validation_failed", "form")


def test_deep_nesting_on_register(gateway_url, newcomer):
    raw = with_field(registration_body(newcomer), "full_name", deep(10_000))
    check(post(f"{gateway_url}/api/v1/auth/register/mobile", raw), 400, "json_too_deep")
    check(post(f"{gateway_url}/api/v1/auth/register/mobile", deep(10_000).encode()), 400, "json_too_deep")


def test_deep_nesting_on_login(gateway_url, citizen, no_sign_in_written):
    raw = with_field(sign_in_body(citizen), "password", deep(10_000))
    check(post(f"{gateway_url}/api/v1/auth/login", raw), 400, "json_too_deep")
    check(post(f"{gateway_url}/api/v1/auth/login", deep(10_000).encode()), 400, "json_too_deep")


# -- lone surrogates -------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "field"), [
    ("applicant.full_name", "applicant.full_name"),
    ("applicant.address", "applicant.address"),
    ("form.note", "form.note"),
    ("procedure_code", "procedure_code"),
])
def test_lone_surrogate_on_submit(gateway_url, citizen, filing, no_dossier_written, path, field):
    raw = with_field(filing, path, f'"An{SURROGATE}"')
    resp = post(f"{gateway_url}/api/v1/dossiers", raw, citizen["access_token"], **{"Idempotency-Key": uuid.uuid4().hex})
    check(resp, 422, "validation_failed", field, LONE)


def test_lone_surrogate_in_a_key_or_a_document_on_submit(gateway_url, citizen, filing, no_dossier_written):
    url, token = f"{gateway_url}/api/v1/dossiers", citizen["access_token"]
    raw = with_field(filing, "form", '{"ghi_chu' + SURROGATE + '": "x"}')
    check(post(url, raw, token), 422, "validation_failed", "form.ghi_chu\\ud800", "Not a valid field name")
    docs = json.loads(json.dumps(filing["documents"]))
    docs[0]["name"] = "@@name@@"
    raw = json.dumps({**filing, "documents": docs}).replace('"@@name@@"', f'"a{SURROGATE}.pdf"').encode()
    check(post(url, raw, token), 422, "validation_failed", "documents.0.name", LONE)
    low = with_field(filing, "applicant.full_name", '"An\\udfff"')  # a lone low surrogate
    check(post(url, low, token), 422, "validation_failed", "applicant.full_name", LONE)


@pytest.mark.parametrize("field", ["full_name", "password", "phone", "cccd"])
def test_lone_surrogate_on_register(gateway_url, newcomer, field):
    raw = with_field(registration_body(newcomer), field, f'"An{SURROGATE}"')
    check(post(f"{gateway_url}/api/v1/auth/register/mobile", raw), 422, "validation_failed", field, LONE)


@pytest.mark.parametrize("field", ["password", "cccd"])
def test_lone_surrogate_on_login(gateway_url, citizen, no_sign_in_written, field):
    raw = with_field(sign_in_body(citizen), field, f'"An{SURROGATE}"')
    check(post(f"{gateway_url}/api/v1/auth/login", raw), 422, "validation_failed", field, LONE)


def test_a_proper_pair_of_surrogate_escapes_is_text(gateway_url, newcomer):
    """``"\\ud83d\\ude00"`` is one character (an emoji), not a lone surrogate: the parser lets it
    through and identity answers for what it is (not a phone number)."""
    raw = with_field(registration_body(newcomer), "phone", '"\\ud83d\\ude00"')
    check(post(f"{gateway_url}/api/v1/auth/register/mobile", raw), 422, "invalid_phone", "phone",
          "Not a Vietnamese mobile number")


# -- non-finite numbers ----------------------------------------------------------------------


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_non_finite_number_on_submit(gateway_url, citizen, filing, no_dossier_written, number):
    raw = with_field(filing, "form.so_tien", number)
    resp = post(f"{gateway_url}/api/v1/dossiers", raw, citizen["access_token"], **{"Idempotency-Key": uuid.uuid4().hex})
    check(resp, 422, "validation_failed", "form.so_tien", NOT_FINITE)


def test_finite_numbers_still_pass_the_parser(gateway_url, citizen, filing, no_dossier_written):
    """1e308 and 1e-400 (which underflows to 0) are numbers: the parser keeps them; only the
    fields' own rules answer (here: a procedure code is text)."""
    raw = with_field(with_field_dict(filing, "form.so_tien", 1e308), "procedure_code", "1e-400")
    check(post(f"{gateway_url}/api/v1/dossiers", raw, citizen["access_token"]), 422, "validation_failed",
          "procedure_code", "Not a valid string")


@pytest.mark.parametrize("number", ["NaN", "Infinity", "1e400"])
def test_non_finite_number_on_register(gateway_url, newcomer, number):
    raw = with_field(registration_body(newcomer), "full_name", number)
    check(post(f"{gateway_url}/api/v1/auth/register/mobile", raw), 422, "validation_failed", "full_name",
          NOT_FINITE)


@pytest.mark.parametrize("number", ["NaN", "-Infinity", "1e400"])
def test_non_finite_number_on_login(gateway_url, citizen, no_sign_in_written, number):
    raw = with_field(sign_in_body(citizen), "password", number)
    check(post(f"{gateway_url}/api/v1/auth/login", raw), 422, "validation_failed", "password", NOT_FINITE)


# -- body size: chunked, and a Content-Length shorter than the body ---------------------------


def test_chunked_oversize_body_on_submit(gateway_url, citizen, no_dossier_written):
    status, body, kind = chunked(gateway_url, "/api/v1/dossiers", oversize_parts(20 * 1024 * 1024),
                                 citizen["access_token"])
    problem(status, body, kind, 413, "payload_too_large")


def test_chunked_oversize_body_on_register(gateway_url, newcomer):
    status, body, kind = chunked(gateway_url, "/api/v1/auth/register/mobile", oversize_parts(20 * 1024 * 1024))
    problem(status, body, kind, 413, "payload_too_large")


def test_chunked_oversize_body_on_login(gateway_url, no_sign_in_written):
    status, body, kind = chunked(gateway_url, "/api/v1/auth/login", oversize_parts(20 * 1024 * 1024))
    problem(status, body, kind, 413, "payload_too_large")


def test_chunked_body_one_byte_over_the_limit(gateway_url, no_sign_in_written):
    status, body, kind = chunked(gateway_url, "/api/v1/auth/login", oversize_parts(MAX_BODY_BYTES + 1))
    problem(status, body, kind, 413, "payload_too_large")


def test_chunked_body_within_the_limit_is_read(gateway_url, citizen, filing, no_dossier_written, newcomer,
                                               no_sign_in_written):
    """Chunked bodies are no longer read as empty: what is in them decides the answer."""
    def parts(raw: bytes) -> Iterator[bytes]:
        yield from (raw[i:i + 1000] for i in range(0, len(raw), 1000))

    deep_filing = with_field(filing, "form.x", deep(10_000))
    problem(*chunked(gateway_url, "/api/v1/dossiers", parts(deep_filing), citizen["access_token"]), 400,
            "json_too_deep")
    status, body, kind = chunked(gateway_url, "/api/v1/auth/register/mobile",
                                 parts(with_field(registration_body(newcomer), "full_name", f'"A{SURROGATE}"')))
    assert problem(status, body, kind, 422, "validation_failed")["errors"][0]["field"] == "full_name"
    status, body, kind = chunked(gateway_url, "/api/v1/auth/login",
                                 parts(with_field(sign_in_body(citizen), "password", "NaN")))
    assert problem(status, body, kind, 422, "validation_failed")["errors"][0]["field"] == "password"


def test_a_malformed_chunked_body_is_a_bad_request(gateway_url, no_sign_in_written):
    target = urllib.parse.urlsplit(gateway_url)
    with socket.create_connection((target.hostname, target.port), timeout=30) as sock:
        sock.sendall((f"POST /api/v1/auth/login HTTP/1.1\r\nHost: {target.netloc}\r\n"
                      "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "zz\r\n{}\r\n0\r\n\r\n").encode())
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        problem(resp.status, json.loads(resp.read()), resp.getheader("Content-Type", ""), 400, "bad_request")


@pytest.mark.parametrize(("path", "declared", "field"), [
    ("/api/v1/dossiers", b"{}", "procedure_code"),
    ("/api/v1/auth/register/mobile", b"{}", "cccd"),
    ("/api/v1/auth/login", b'{"method": "password"}', "cccd"),
])
def test_a_short_content_length_lets_no_more_through(gateway_url, citizen, filing, newcomer, no_dossier_written,
                                                     no_sign_in_written, path, declared, field):
    """Only the declared bytes are the body: what follows (a whole valid body) is not read as
    part of it, so the answer is the one for the declared bytes alone."""
    full = {"/api/v1/dossiers": filing, "/api/v1/auth/register/mobile": registration_body(newcomer),
            "/api/v1/auth/login": sign_in_body(citizen)}[path]
    extra = json.dumps(full).encode()
    token = citizen["access_token"] if path == "/api/v1/dossiers" else None
    status, body = short_length(gateway_url, path, declared, extra, token)
    assert (status, body["code"]) == (422, "validation_failed"), body
    assert field in {e["field"] for e in body["errors"]}, body["errors"]


# -- the services' own boundary ---------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(system, amqp_uri):
    with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=30) as proxy:
        yield proxy


@pytest.mark.parametrize("field", ["full_name", "password"])
def test_identity_refuses_lone_surrogates_over_rpc(cluster, gateway_url, newcomer, field):
    body = {**registration_body(newcomer), field: "An\ud800"}
    with pytest.raises(InvalidInput) as refused:
        cluster.identity.register_mobile(body, context=None)
    assert refused.value.code == "validation_failed"
    assert [e["field"] for e in refused.value.details] == [field]
    assert refused.value.details[0]["message"].startswith(LONE)


def test_identity_sign_in_refuses_lone_surrogates_over_rpc(cluster, citizen, no_sign_in_written):
    with pytest.raises(InvalidInput) as refused:
        cluster.identity.login({**sign_in_body(citizen), "password": "x\udc00"}, context=None)
    assert refused.value.code == "validation_failed"
    assert [e["field"] for e in refused.value.details] == ["password"]


# -- the same requests without the hostile part go through --------------------------------------


def test_the_clean_requests_are_written(gateway_url, filing, db):
    """The checks above would mean little if a clean request wrote nothing either: the same
    submission, registration and sign-in succeed and show up where the others looked."""
    someone = accounts.register_citizen(gateway_url)
    resp = post(f"{gateway_url}/api/v1/dossiers", json.dumps(filing).encode(), someone["access_token"])
    assert resp.status_code == 201, resp.text
    assert dossiers_of(gateway_url, someone["access_token"]) == [resp.json()["code"]]
    assert one(db, "SELECT count(*) FROM dossier.owner_dossiers WHERE owner_id = %s", someone["account_id"]) == 1
    person = accounts.random_person()
    accounts.add_carrier_record(gateway_url, person["phone"], person["cccd"])
    resp = post(f"{gateway_url}/api/v1/auth/register/mobile", json.dumps(registration_body(person)).encode())
    assert resp.status_code == 202, resp.text
    assert one(db, "SELECT count(*) FROM identity.registrations WHERE identifier = %s", person["cccd"]) == 1
    assert sms_to(gateway_url, person["phone"]) == 1
    before = sms_to(gateway_url, someone["phone"])
    resp = post(f"{gateway_url}/api/v1/auth/login", json.dumps(sign_in_body(someone)).encode())
    assert resp.status_code == 200, resp.text
    assert sms_to(gateway_url, someone["phone"]) == before + 1


# -- the rules themselves, without the system ---------------------------------------------------


def test_the_depth_scan_is_linear_whatever_the_text():
    """Strings that never end, escaped quotes by the million, brackets by the million: each is
    one pass (a scan restarting at every quote would take hours on the first)."""
    import time

    from gateway.http.json_body import depth_of, parse
    from portal_common.errors import ServiceError

    for text, depth in [('"' + '\\"' * 3_000_000, 0), ("[" * 6_000_000 + "]" * 6_000_000, 6_000_000),
                        ('["[{", {"a": "}]\\"]"}]', 2), ("][", 0), ("[}", 1)]:
        started = time.monotonic()
        assert depth_of(text.encode()) == depth
        assert time.monotonic() - started < 5
    assert depth_of(b"[[]") is None
    for raw, code in [(b'"' + b'\\"' * 3_000_000, "invalid_json"), (b"[" * 100_000, "invalid_json"),
                      (b"[" * 65 + b"]" * 65, "json_too_deep")]:
        with pytest.raises(ServiceError) as refused:
            parse(raw)
        assert refused.value.code == code
    assert parse(b"[" * 64 + b"]" * 64) is not None


def test_a_body_with_fewer_brackets_than_the_limit_skips_the_scan_and_is_refused_the_same(monkeypatch):
    """Counting brackets bounds the depth: only a body with more than the limit is scanned."""
    import base64

    from gateway.http import json_body
    from portal_common.errors import ServiceError

    scanned = []
    real = json_body.depth_of
    monkeypatch.setattr(json_body, "depth_of", lambda raw: scanned.append(len(raw)) or real(raw))
    filing = {"applicant": {"full_name": "Lê Văn Tám"}, "form": {"x": "[{" * 20},
              "documents": [{"content_base64": base64.b64encode(bytes(range(256)) * 128).decode()}] * 2}
    assert json_body.parse(json.dumps(filing).encode(), max_depth=64) == filing
    assert scanned == []
    for raw in (b"[[]", b"][", b'{"a": [}', b'{"a": "unended}'):  # unpaired: the parser refuses
        with pytest.raises(ServiceError) as refused:
            json_body.parse(raw, max_depth=64)
        assert refused.value.code == "invalid_json"
    assert scanned == []
    # at the limit's count a body is not scanned; one bracket more (even in a string) is
    assert json_body.parse(b"[" * 64 + b"]" * 64) is not None and scanned == []
    assert json_body.parse(b'[[["["]]]', max_depth=3) == [[["["]]] and len(scanned) == 1
    with pytest.raises(ServiceError) as refused:
        json_body.parse(b"[" * 65 + b"]" * 65)
    assert refused.value.code == "json_too_deep" and len(scanned) == 2


def test_the_shared_text_rule_of_the_contracts():
    from marshmallow import Schema, ValidationError, fields

    from portal_common.contracts.fields import ActorSchema, Text, Utf8Schema
    from portal_common.contracts.identity import LoginBody, RegisterMobileBody

    class Named(Utf8Schema):  # the schema-wide rule reaches plain String fields and nested values
        name = fields.String()
        extra = fields.Dict()

    with pytest.raises(ValidationError) as refused:
        Named().load({"name": "An\ud800", "extra": {"a": ["ok", "b\udc00"]}})
    assert sorted(refused.value.messages) == ["extra.a.1", "name"]

    class Plain(Schema):
        name = Text()

    with pytest.raises(ValidationError) as refused:
        Plain().load({"name": "x\udfff"})
    assert refused.value.messages == {"name": ["Not valid Unicode text: a lone surrogate (such as \\ud800) "
                                               "is not allowed."]}
    with pytest.raises(ValidationError) as refused:
        ActorSchema().load({"kind": "citizen", "id": "a\ud800"})
    assert list(refused.value.messages) == ["id"]
    with pytest.raises(ValidationError) as refused:
        RegisterMobileBody().load({"cccd": "001099000001", "full_name": "An\ud800", "date_of_birth": "1990-01-01",
                                   "gender": "male", "phone": "0912345678", "password": "p\ud800"})
    assert sorted(refused.value.messages) == ["full_name", "password"]
    with pytest.raises(ValidationError) as refused:
        LoginBody().load({"cccd": "001099000001", "password": "p", "chain_pem": ["ok", "x\ud800"]})
    assert list(refused.value.messages) == ["chain_pem.1"]
    assert RegisterMobileBody().load({"cccd": "001099000001", "full_name": "Nguyễn 😀", "date_of_birth": "1990-01-01",
                                      "gender": "male", "phone": "0912345678", "password": "p"})["full_name"]
