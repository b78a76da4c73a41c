"""A delivery routed with its lease is the routing worker's to send: the retry timer and other
processes leave it alone until the lease runs out (real database, a recording channel)."""

from __future__ import annotations

import uuid

import pytest

from portal_common.eventstore import EventStore
from services.router import repository
from services.router.application import Router
from services.router.settings import Settings
from tests.router.conftest import router_events, submitted


class Recording:
    def __init__(self):
        self.sent: list[str] = []

    def declare(self, agency_code: str) -> None:
        pass

    def send(self, agency_code: str, event_type: str, body: bytes, delivery_id: str, headers=None) -> None:
        self.sent.append(delivery_id)


def _routed_with_lease(router_store, lease_s: int) -> tuple[Recording, Router, str]:
    """A router that sends on a recording channel, and one dossier it routed with a lease."""
    channel = Recording()
    router = Router(router_store, EventStore(router_store), amqp=channel, http=None, settings=Settings(lease_s=lease_s))
    with router_store.transaction() as cur:
        [delivery] = router.route(cur, submitted(f"G{uuid.uuid4().hex[:10]}", f"E{uuid.uuid4().hex[:6]}"),
                                  lease=True)
    return channel, router, delivery


def test_routed_with_its_lease_then_sent_by_the_router_that_routed_it(router_store):
    channel, router, delivery = _routed_with_lease(router_store, lease_s=30)
    with router_store.transaction() as cur:
        assert delivery not in repository.due(cur, 10_000)  # the timer does not take it
    assert router.attempt(delivery) is None  # nor does anyone else
    assert router.attempt(delivery, leased=True) == "sent"
    assert router.attempt(delivery, leased=True) is None  # sent already: never twice
    assert channel.sent == [delivery]
    assert router_events(router_store, delivery) == ["DeliveryScheduled", "DeliverySent"]


def test_a_lease_that_ran_out_is_retried_by_the_timer(router_store):
    channel, router, delivery = _routed_with_lease(router_store, lease_s=0)
    # the routing worker died before its attempt: the lease is over at once (0 s here)
    with router_store.transaction() as cur:
        assert delivery in repository.due(cur, 10_000)
    assert router.attempt(delivery) == "sent" and channel.sent == [delivery]


def test_a_send_whose_record_failed_is_counted_and_sent_again_with_the_same_id(router_store):
    """The database went away between the send and its record: the lease runs out, the timer
    sends again with the same delivery id (the agency drops the copy), numbered as try 2."""
    channel, router, delivery = _routed_with_lease(router_store, lease_s=0)
    with router_store.transaction() as cur:
        assert repository.get_delivery(cur, delivery)["attempts"] == 1  # counted before sending

    def record_fails(*_args, **_kwargs):
        raise ConnectionError("the database went away")

    real = router._sent
    router._sent = record_fails
    try:
        with pytest.raises(ConnectionError):
            router.attempt(delivery, leased=True)
    finally:
        router._sent = real
    with router_store.transaction() as cur:
        assert repository.get_delivery(cur, delivery)["attempts"] == 1
    assert router.attempt(delivery) == "sent"
    assert channel.sent == [delivery, delivery]  # the same id twice: the agency keeps one
    with router_store.transaction() as cur:
        row = repository.get_delivery(cur, delivery)
    assert row["attempts"] == 2 and row["status"] == "sent"
