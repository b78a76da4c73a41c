"""Fixtures of the catalog tests: the seeded catalog schema of this run's database."""

from __future__ import annotations

import contextlib
import time
import uuid

import pytest
from kombu import Connection, Queue

from portal_common.db import Database
from portal_common.outbox import event_exchange


@pytest.fixture(scope="session")
def catalog_db(migrated_database):
    db = Database(migrated_database, "catalog", size=4)
    yield db
    db.close()


@pytest.fixture
def unique_code():
    """A fresh procedure / agency code, so tests that change the catalog leave the seed alone."""
    return lambda prefix="T": f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def subscriber(system, amqp_uri):
    """A queue of our own bound to every event on ``catalog.events``; returns a waiter."""
    conn = Connection(amqp_uri)
    channel = conn.channel()
    queue = Queue(f"catalog-test-{uuid.uuid4().hex[:8]}", exchange=event_exchange("catalog"),
                  routing_key="#", exclusive=True, auto_delete=True)
    queue(channel).declare()
    received: list[dict] = []

    def on_message(body, message):
        received.append({"routing_key": message.delivery_info["routing_key"], **body})
        message.ack()

    consumer = conn.Consumer(queue, callbacks=[on_message], accept=["json"])
    consumer.consume()

    def wait_for(stream_id: str, count: int, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mine = [m for m in received if m["stream_id"] == stream_id]
            if len(mine) >= count:
                return mine
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=0.5)
        raise AssertionError(f"only {[m['event_type'] for m in received if m['stream_id'] == stream_id]}")

    yield wait_for
    consumer.cancel()
    conn.release()


def procedure_payload(code: str, **over) -> dict:
    body = {
        "code": code, "name": "Cấp giấy phép thử nghiệm khai thác đá ong", "field": "xay_dung",
        "target": "business", "levels": ["province"], "agency_kinds": ["province_construction"],
        "processing_days": 12, "online_level": "partial",
        "required_documents": [{"id": "tp1", "name": "Đơn đề nghị cấp giấy phép", "mandatory": True,
                                "original_or_copy": "original", "count": 1, "form_template": "mau-01"}],
        "fees": [{"name": "Lệ phí", "amount_vnd": 100000}], "result_documents": ["Giấy phép"],
        "legal_bases": ["Luật Khoáng sản"],
    }
    body.update(over)
    return body
