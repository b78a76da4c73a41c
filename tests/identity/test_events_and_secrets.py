"""Identity's events: registered in the catalogue, published on ``identity.events``, and free
of secrets, as are the services' log lines."""

from __future__ import annotations

import contextlib
import json
import re
import uuid

import pytest
from kombu import Connection, Exchange, Queue

from portal_common.contracts import CATALOGUE
from tests.support import accounts

pytestmark = pytest.mark.integration

SECRET_FIELDS = ("password", "otp", "refresh_token", "access_token", "secret", "signature", "hash", "challenge", "pem")


def test_identity_events_are_in_the_catalogue_without_secret_fields():
    contracts = CATALOGUE.by_producer("identity")
    names = {c.event_type for c in contracts}
    assert {"CitizenRegistered", "BusinessRegistered", "AccountVerified", "SignInSucceeded", "SignInFailed",
            "AccountLocked", "SignedOut"} <= names
    for contract in contracts:
        for field in contract.schema().fields:
            assert not any(word in field for word in SECRET_FIELDS), (contract.event_type, field)


def test_registration_is_published_on_the_exchange(gateway_url, amqp_uri):
    exchange = Exchange("identity.events", type="topic", durable=True)
    queue = Queue(f"test-identity-{uuid.uuid4().hex[:8]}", exchange, routing_key="CitizenRegistered",
                  auto_delete=True)
    received = []
    with Connection(amqp_uri) as conn, conn.Consumer(queue, callbacks=[
            lambda body, msg: (received.append(body), msg.ack())]):
        person = accounts.register_citizen(gateway_url)
        for _ in range(60):
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=1)
            if any(b.get("data", {}).get("account_id") == person["account_id"] for b in received):
                break
    mine = [b for b in received if b["data"]["account_id"] == person["account_id"]]
    assert mine and mine[0]["event_type"] == "CitizenRegistered" and mine[0]["schema_version"] == 1
    assert mine[0]["data"]["cccd"] == person["cccd"]
    assert person["password"] not in json.dumps(mine[0])


TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:?\d\d|Z)?")


def test_no_secret_in_any_event_or_log_line(gateway_url, system, identity_db):
    person = accounts.register_citizen(gateway_url)
    refreshed = accounts.call(f"{gateway_url}/api/v1/auth/refresh", "POST",
                              {"refresh_token": person["refresh_token"]})
    accounts.call(f"{gateway_url}/api/v1/auth/login", "POST",
                  {"method": "password", "cccd": person["cccd"], "password": person["password"] + "!"},
                  expect=(401,))
    outbox = accounts.call(f"{gateway_url}/api/v1/dev/sms-outbox?phone={person['phone']}")["items"]
    codes = [m["body"].split("la ")[1][:6] for m in outbox]
    with identity_db.transaction() as cur:
        cur.execute("SELECT password_hash FROM accounts WHERE id = %s", (person["account_id"],))
        password_hash = cur.fetchone()["password_hash"]
        cur.execute("SELECT payload::text || metadata::text AS t FROM events")
        events = "\n".join(r["t"] for r in cur.fetchall())
    secrets = [person["password"], person["password"] + "!", person["refresh_token"],
               person["refresh_token"].split(".")[1], refreshed["refresh_token"], person["access_token"],
               password_hash]
    logs = "\n".join(p.read_text(errors="replace") for p in system.log_dir.iterdir())
    # Times carry microseconds: a six-digit code may stand in one by chance, so leave them out.
    events, logs = (TIMESTAMP.sub("<time>", text) for text in (events, logs))
    assert person["account_id"] in events and codes
    for secret in secrets:
        assert secret not in events, "a secret in an event"
        assert secret not in logs, "a secret in a log line"
    # A six-digit code also stands by chance inside request ids, hex digests and numbers, and as
    # a part of an identifier joined by '.' or '-' (a generated procedure code "G.007751", a test's
    # dossier code "G01.TEST-260317-007751"): it leaks only where it stands alone.
    for code in codes:
        alone = re.compile(rf"(?<![0-9A-Za-z.\-]){code}(?![0-9A-Za-z\-])")
        assert not alone.search(events), f"one-time code {code} in an event"
        assert not alone.search(logs), f"one-time code {code} in a log line: {alone.search(logs)}"
