"""The reference back office's two intakes on their own: the signed-callback receiver (real
HTTP) and the pika queue consumer (real RabbitMQ)."""

from __future__ import annotations

import http.client
import json
import time
import uuid

import pika
import pytest

from deploy.backoffice import signature
from deploy.backoffice.consumer import AgencyConsumer, declare
from deploy.backoffice.inbox import Inbox
from deploy.backoffice.receiver import CallbackReceiver
from services.router.domain import signing

SECRET = "receiver-secret"


@pytest.fixture
def receiver():
    inbox = Inbox()
    rec = CallbackReceiver(inbox, SECRET).start()
    yield rec
    rec.stop()


def _post(rec: CallbackReceiver, body: bytes, headers: dict[str, str]) -> int:
    host, port = rec.server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.request("POST", "/deliveries", body=body, headers=headers)
    status = conn.getresponse().status
    conn.close()
    return status


def _signed(body: dict, secret: str = SECRET, now: float | None = None) -> tuple[bytes, dict[str, str]]:
    raw = signing.encode_body(body)
    return raw, signing.signed_headers(secret, raw, body.get("delivery_id", "x"), time.time() if now is None else now)


def test_signed_callback_is_taken_once(receiver):
    body, headers = _signed({"delivery_id": "d-1", "dossier_code": "G1"})
    assert _post(receiver, body, headers) == 204
    assert _post(receiver, body, headers) == 204  # a retry of the same delivery: accepted, not re-applied
    assert [d["delivery_id"] for d in receiver.inbox.received] == ["d-1"]
    assert receiver.inbox.duplicates == 1


@pytest.mark.parametrize("tamper", ["wrong_secret", "changed_body", "stale", "future", "no_headers",
                                    "garbage_timestamp", "not_json"])
def test_bad_callbacks_are_rejected(receiver, tamper):
    body, headers = _signed({"delivery_id": "d-2"}, secret="other" if tamper == "wrong_secret" else SECRET,
                            now=time.time() - 3600 if tamper == "stale" else
                            time.time() + 3600 if tamper == "future" else None)
    if tamper == "changed_body":
        body = body.replace(b"d-2", b"d-3")
    if tamper == "no_headers":
        headers = {"Content-Type": "application/json"}
    if tamper == "garbage_timestamp":
        headers[signature.TIMESTAMP_HEADER] = "1e10; DROP"
    if tamper == "not_json":
        body = b"\xff\xfe not json"
        headers = signing.signed_headers(SECRET, body, "x", time.time())
    assert _post(receiver, body, headers) == 401
    assert receiver.inbox.received == [] and receiver.rejected == 1


@pytest.mark.parametrize(("new", "previous"), [(SECRET, "retired"), ("rotated-in", SECRET)])
def test_a_callback_signed_during_a_rotation_is_taken_whichever_secret_the_receiver_holds(
        receiver, new, previous):
    raw = signing.encode_body({"delivery_id": "d-rot"})
    headers = signing.signed_headers(new, raw, "d-rot", time.time(), previous=previous)
    assert "," in headers[signature.SIGNATURE_HEADER]
    assert _post(receiver, raw, headers) == 204
    assert [d["delivery_id"] for d in receiver.inbox.received] == ["d-rot"] and receiver.rejected == 0


@pytest.mark.parametrize("tamper", ["neither_secret", "stale"])
def test_a_rotation_header_with_no_matching_or_a_stale_signature_is_rejected(receiver, tamper):
    raw = signing.encode_body({"delivery_id": "d-bad"})
    secrets = ("one", "two") if tamper == "neither_secret" else (SECRET, "retired")
    headers = signing.signed_headers(secrets[0], raw, "d-bad", time.time() - (3600 if tamper == "stale" else 0),
                                    previous=secrets[1])
    assert _post(receiver, raw, headers) == 401
    assert receiver.inbox.received == [] and receiver.rejected == 1


def test_empty_or_oversized_bodies_are_refused(receiver):
    assert _post(receiver, b"", {}) == 400
    host, port = receiver.server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.putrequest("POST", "/deliveries")
    conn.putheader("Content-Length", str(50 * 1024 * 1024))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    assert receiver.inbox.received == []


def test_handler_failure_answers_503_so_the_router_retries():
    calls = []

    def handler(delivery):
        calls.append(delivery["delivery_id"])
        if len(calls) == 1:
            raise RuntimeError("disk full")

    rec = CallbackReceiver(Inbox(handler), SECRET).start()
    try:
        body, headers = _signed({"delivery_id": "d-9"})
        assert _post(rec, body, headers) == 503
        assert _post(rec, body, headers) == 204
    finally:
        rec.stop()
    assert calls == ["d-9", "d-9"] and len(rec.inbox.received) == 1


def test_queue_consumer_acks_dedupes_and_drops_garbage(router_amqp):
    agency = f"B{uuid.uuid4().hex[:8].upper()}"
    conn = pika.BlockingConnection(pika.URLParameters(router_amqp))
    try:
        channel = conn.channel()
        queue = declare(channel, agency)
        key = f"agency.{agency}.dossier.submitted"
        for body in [
            {"delivery_id": "q-1", "agency_code": agency, "dossier_code": "G1"},
            {"delivery_id": "q-1", "agency_code": agency, "dossier_code": "G1"},  # second copy
            {"delivery_id": "q-2", "agency_code": "SOMEONE-ELSE"},  # misrouted
            "not a delivery",
        ]:
            channel.basic_publish("agency.deliveries", key, json.dumps(body).encode(),
                                  pika.BasicProperties(delivery_mode=2))
        channel.basic_publish("agency.deliveries", key, b"\x00garbage", pika.BasicProperties(delivery_mode=2))
        failures = []

        def flaky(delivery):
            if not failures:
                failures.append(delivery["delivery_id"])
                raise RuntimeError("database down")

        inbox = Inbox(flaky)
        confirmed = []
        consumer = AgencyConsumer(router_amqp, agency, inbox, on_taken=lambda d: confirmed.append(d["delivery_id"]))
        consumer.run(until=time.monotonic() + 3, max_messages=2)
        assert confirmed == ["q-1"]  # confirmed to the router once, not for the second copy
        assert failures == ["q-1"]  # nacked and requeued, then taken
        assert [d["delivery_id"] for d in inbox.received] == ["q-1"]
        assert inbox.duplicates == 1 and consumer.acked == 2
        left = channel.queue_declare(queue, passive=True).method.message_count
        assert left == 0  # garbage rejected (not requeued), nothing stuck
    finally:
        conn.close()
