"""The rules every ``@api`` endpoint follows, checked on a small gateway of test routes run as
its own process (tests/gateway/rules_service.py) with rate budgets small enough to exhaust:
problem+json with a stable code, both languages and the request id; every bad field listed;
no internals on a 500; tokens verified locally; 429 + Retry-After per client and per
account; request ids; CORS for the configured origin only; security headers; size limits."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parents[2]
PORTAL = "https://portal.example.gov.vn"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Issuer:
    """Signs access tokens the way the identity service does (EdDSA, kid, iss, aud)."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": "test-key", "alg": "EdDSA", "use": "sig"})
        self.jwks = {"keys": [jwk]}

    def token(self, role: str = "citizen", sub: str | None = None, exp_in: int = 300, **claims) -> str:
        now = int(time.time())
        body = {"sub": sub or uuid.uuid4().hex, "role": role, "idn": "001099000001", "jti": uuid.uuid4().hex,
                "iss": "portal-identity", "aud": "portal", "iat": now, "exp": now + exp_in, **claims}
        return jwt.encode(body, self.key, algorithm="EdDSA", headers={"kid": "test-key"})


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture(scope="module")
def rules_url(tmp_path_factory, issuer, amqp_uri):
    tmp = tmp_path_factory.mktemp("rules")
    (tmp / "jwks.json").write_text(json.dumps(issuer.jwks))
    port = _free_port()
    (tmp / "config.yml").write_text(
        f"AMQP_URI: '{amqp_uri}'\nWEB_SERVER_ADDRESS: 127.0.0.1:{port}\n"
        "LOGGING:\n  version: 1\n  disable_existing_loggers: false\n  formatters:\n    json:\n"
        "      (): portal_common.logs.JsonFormatter\n  handlers:\n    console:\n"
        "      class: logging.StreamHandler\n      formatter: json\n  root:\n    level: INFO\n"
        "    handlers: [console]\n")
    env = {**__import__("os").environ, "RULES_JWKS_FILE": str(tmp / "jwks.json"), "RATE_SIGNIN": "10",
           "RATE_SIGNIN_ACCOUNT": "3", "RATE_LOOKUP": "20", "TRUSTED_PROXIES": "127.0.0.1",
           "CORS_ORIGINS": PORTAL, "MAX_BODY_BYTES": "20000",
           "SERVICE_NAME": "gateway", "PYTHONWARNINGS": "ignore"}
    log = open(tmp / "rules.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "nameko", "run", "--config", str(tmp / "config.yml"),
                             "tests.gateway.rules_service:RulesService"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp / "rules.log").read_text()
        try:
            requests.get(f"{url}/t/boom", timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:  # idle keep-alive connections can hold a graceful stop
        proc.kill()
        proc.wait(5)
    log.close()


def _problem(resp: requests.Response, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    body = resp.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["type"] == f"urn:portal:problem:{code}"
    assert body["message_en"] and body["message_vi"]
    assert body["request_id"] == resp.headers["X-Request-ID"]
    return body


def test_validation_lists_every_bad_field_in_both_languages(rules_url):
    resp = requests.post(f"{rules_url}/t/items", json={"name": "", "count": "many", "tags": ["x" * 50, "ok"],
                                                       "extra": 1}, timeout=10)
    body = _problem(resp, 422, "validation_failed")
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"name", "count", "tags.0", "extra"}
    assert body["message_vi"] == "Một số trường không hợp lệ."


def test_missing_fields_are_all_listed(rules_url):
    body = _problem(requests.post(f"{rules_url}/t/items", json={}, timeout=10), 422, "validation_failed")
    assert {e["field"] for e in body["errors"]} == {"name", "count"}


@pytest.mark.parametrize("payload,content_type,status,code", [
    (b"{not json", "application/json", 400, "invalid_json"),
    (b"\xff\xfe", "application/json", 400, "invalid_json"),
    (b"name=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    (b"[1, 2]", "application/json", 422, "validation_failed"),
])
def test_malformed_bodies_are_problems(rules_url, payload, content_type, status, code):
    resp = requests.post(f"{rules_url}/t/items", data=payload, headers={"Content-Type": content_type}, timeout=10)
    _problem(resp, status, code)


def test_huge_strings_and_control_characters_are_refused_cleanly(rules_url):
    resp = requests.post(f"{rules_url}/t/items", json={"name": "x" * 10_000, "count": 10**30}, timeout=10)
    body = _problem(resp, 422, "validation_failed")
    assert {e["field"] for e in body["errors"]} == {"name", "count"}
    resp = requests.get(f"{rules_url}/t/search", params={"q": "a\x00b\x1b"}, timeout=10)
    assert _problem(resp, 422, "validation_failed")["errors"][0]["field"] == "q"


def test_body_and_query_size_limits(rules_url):
    resp = requests.post(f"{rules_url}/t/items", data=b"{" + b" " * 30_000 + b"}",
                         headers={"Content-Type": "application/json"}, timeout=10)
    _problem(resp, 413, "payload_too_large")
    resp = requests.get(f"{rules_url}/t/search?q=" + "a" * 5000, timeout=10)
    _problem(resp, 414, "query_too_long")


def test_unexpected_failure_is_a_500_without_internals(rules_url):
    resp = requests.get(f"{rules_url}/t/boom", headers={"X-Request-ID": "trace-500"}, timeout=10)
    body = _problem(resp, 500, "internal_error")
    assert body["request_id"] == "trace-500"
    assert "hunter2" not in resp.text and "Traceback" not in resp.text and "/srv" not in resp.text


def test_service_errors_keep_their_code_and_get_a_vietnamese_message(rules_url):
    body = _problem(requests.get(f"{rules_url}/t/conflict", timeout=10), 409, "dossier_not_pending")
    assert body["message_en"] == "The dossier is no longer pending."
    assert body["message_vi"] != body["message_en"]
    body = _problem(requests.get(f"{rules_url}/t/invalid", timeout=10), 422, "invalid_input")
    assert {e["field"] for e in body["errors"]} == {"agency_code", "form.x"}


def test_request_id_is_taken_when_sane_and_made_otherwise(rules_url):
    resp = requests.get(f"{rules_url}/t/search", headers={"X-Request-ID": "portal-abc.123"}, timeout=10)
    assert resp.headers["X-Request-ID"] == "portal-abc.123"
    resp = requests.get(f"{rules_url}/t/search", headers={"X-Request-ID": "bad id\twith <html>"}, timeout=10)
    made = resp.headers["X-Request-ID"]
    assert made and made != "bad id\twith <html>" and len(made) == 32
    other = requests.get(f"{rules_url}/t/nowhere", timeout=10)
    assert _problem(other, 404, "not_found")["request_id"] not in ("", made)


def test_security_headers_on_every_answer(rules_url):
    for resp in (requests.get(f"{rules_url}/t/search", timeout=10), requests.get(f"{rules_url}/t/nowhere", timeout=10),
                 requests.get(f"{rules_url}/t/boom", timeout=10)):
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["Cache-Control"] == "no-store"
        assert "Strict-Transport-Security" in resp.headers


def test_cors_only_for_the_configured_portal_origin(rules_url):
    pre = requests.options(f"{rules_url}/t/items", headers={
        "Origin": PORTAL, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,authorization"}, timeout=10)
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == PORTAL
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in pre.headers["Access-Control-Allow-Headers"]
    resp = requests.get(f"{rules_url}/t/search", headers={"Origin": PORTAL}, timeout=10)
    assert resp.headers["Access-Control-Allow-Origin"] == PORTAL
    assert "X-Request-ID" in resp.headers["Access-Control-Expose-Headers"]
    evil = requests.options(f"{rules_url}/t/items", headers={"Origin": "https://evil.example",
                                                              "Access-Control-Request-Method": "POST"}, timeout=10)
    assert "Access-Control-Allow-Origin" not in evil.headers
    evil = requests.get(f"{rules_url}/t/search", headers={"Origin": "https://evil.example"}, timeout=10)
    assert "Access-Control-Allow-Origin" not in evil.headers


def test_tokens_are_verified_locally_and_roles_enforced(rules_url, issuer):
    _problem(requests.get(f"{rules_url}/t/mine", timeout=10), 401, "unauthorized")
    token = issuer.token("citizen", sub="acct-1")
    ok = requests.get(f"{rules_url}/t/mine", headers={"Authorization": f"Bearer {token}",
                                                      "X-Request-ID": "rid-auth"}, timeout=10)
    assert ok.status_code == 200 and ok.json() == {"account": "acct-1", "request_id": "rid-auth"}
    wrong_role = issuer.token("officer", agency="G01")
    _problem(requests.get(f"{rules_url}/t/mine", headers={"Authorization": f"Bearer {wrong_role}"}, timeout=10),
             403, "forbidden")
    expired = issuer.token("citizen", exp_in=-60)
    _problem(requests.get(f"{rules_url}/t/mine", headers={"Authorization": f"Bearer {expired}"}, timeout=10),
             401, "token_expired")
    forged = Issuer().token("citizen")  # same kid, another key
    _problem(requests.get(f"{rules_url}/t/mine", headers={"Authorization": f"Bearer {forged}"}, timeout=10),
             401, "invalid_token")
    resp = requests.get(f"{rules_url}/t/mine", headers={"Authorization": "Basic dXNlcjpwYXNz"}, timeout=10)
    assert _problem(resp, 401, "invalid_token") and resp.headers["WWW-Authenticate"].startswith("Bearer")
    none_alg = jwt.encode({"sub": "x", "role": "operator"}, key=None, algorithm="none", headers={"kid": "test-key"})
    _problem(requests.get(f"{rules_url}/t/mine", headers={"Authorization": f"Bearer {none_alg}"}, timeout=10),
             401, "invalid_token")


def test_sign_in_is_limited_per_account_whatever_the_address(rules_url):
    victim = {"cccd": "001099000777", "password": "not-the-right-one"}
    for _ in range(3):
        assert requests.post(f"{rules_url}/t/login", json=victim, timeout=10).status_code == 200
    resp = requests.post(f"{rules_url}/t/login", json=victim, timeout=10)
    body = _problem(resp, 429, "rate_limited")
    assert int(resp.headers["Retry-After"]) >= 1
    assert body["message_vi"].startswith("Quá nhiều yêu cầu")
    # the address has budget left (10 per minute): another account still signs in
    other = requests.post(f"{rules_url}/t/login", json={"cccd": "001099000888", "password": "password-2"}, timeout=10)
    assert other.status_code == 200


def test_lookups_are_limited_per_client_with_retry_after(rules_url):
    statuses = [requests.get(f"{rules_url}/t/search", params={"q": "x"}, timeout=10).status_code for _ in range(25)]
    assert 429 in statuses
    resp = requests.get(f"{rules_url}/t/search", timeout=10)
    _problem(resp, 429, "rate_limited")
    assert 1 <= int(resp.headers["Retry-After"]) <= 60


def test_each_client_behind_the_trusted_proxy_has_its_own_budget(rules_url):
    first = {"X-Forwarded-For": "198.51.100.7, 203.0.113.10"}
    statuses = [requests.get(f"{rules_url}/t/search", headers=first, timeout=10).status_code for _ in range(25)]
    assert statuses.count(200) == 20 and statuses[-1] == 429
    other = requests.get(f"{rules_url}/t/search", headers={"X-Forwarded-For": "203.0.113.11"}, timeout=10)
    assert other.status_code == 200  # another client behind the same proxy is not blocked


def test_forwarded_for_is_believed_only_from_trusted_proxies():
    from gateway.http.server import _networks, client_address

    trusted = _networks("10.0.0.0/8, 127.0.0.1")
    env = {"REMOTE_ADDR": "10.1.2.3", "HTTP_X_FORWARDED_FOR": "1.2.3.4, 198.51.100.9, 10.9.9.9"}
    assert client_address(env, trusted) == "198.51.100.9"  # right-most hop that is not a proxy
    assert client_address({**env, "REMOTE_ADDR": "203.0.113.1"}, trusted) == "203.0.113.1"  # spoofed header
    assert client_address({**env, "HTTP_X_FORWARDED_FOR": "not-an-ip"}, trusted) == "10.1.2.3"
    assert client_address({"REMOTE_ADDR": "10.1.2.3"}, trusted) == "10.1.2.3"
    assert client_address(env, []) == "10.1.2.3"  # no proxies configured: the socket's address


def test_wrong_method_is_a_problem_naming_the_allowed_ones(rules_url):
    resp = requests.delete(f"{rules_url}/t/items", timeout=10)
    _problem(resp, 405, "method_not_allowed")
    assert resp.headers["Allow"] == "POST"
