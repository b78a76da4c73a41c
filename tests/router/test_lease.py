"""A delivery routed with its lease is the routing worker's to send: the retry timer and other
processes leave it alone until the lease runs out (real database, a recording channel)."""

from __future__ import annotations

import uuid

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

    def send(self, agency_code: str, event_type: str, body: bytes, delivery_id: str) -> None:
        self.sent.append(delivery_id)


def test_routed_with_its_lease_then_sent_by_the_router_that_routed_it(router_store):
    channel = Recording()
    router = Router(router_store, EventStore(router_store), amqp=channel, http=None, settings=Settings(lease_s=30))
    with router_store.transaction() as cur:
        [delivery] = router.route(cur, submitted(f"G{uuid.uuid4().hex[:10]}", f"E{uuid.uuid4().hex[:6]}"),
                                  lease=True)
    with router_store.transaction() as cur:
        assert delivery not in repository.due(cur, 10_000)  # the timer does not take it
    assert router.attempt(delivery) is None  # nor does anyone else
    assert router.attempt(delivery, leased=True) == "sent"
    assert router.attempt(delivery, leased=True) is None  # sent already: never twice
    assert channel.sent == [delivery]
    assert router_events(router_store, delivery) == ["DeliveryScheduled", "DeliverySent"]


def test_a_lease_that_ran_out_is_retried_by_the_timer(router_store):
    channel = Recording()
    router = Router(router_store, EventStore(router_store), amqp=channel, http=None, settings=Settings(lease_s=0))
    with router_store.transaction() as cur:
        [delivery] = router.route(cur, submitted(f"G{uuid.uuid4().hex[:10]}", f"E{uuid.uuid4().hex[:6]}"),
                                  lease=True)
    # the routing worker died before its attempt: the lease is over at once (0 s here)
    with router_store.transaction() as cur:
        assert delivery in repository.due(cur, 10_000)
    assert router.attempt(delivery) == "sent" and channel.sent == [delivery]
