"""An agency's confirmation racing the router's own record of the attempt (real database,
the channel replaced by one that lets the agency confirm mid-send)."""

from __future__ import annotations

import uuid

from portal_common.eventstore import EventStore
from services.router import repository
from services.router.application import Router
from services.router.channels import DeliveryFailed
from tests.router.conftest import router_events, submitted


class ConfirmingChannel:
    """The agency takes the message and confirms it before the broker's confirm returns."""

    def __init__(self, fail_after: bool = False):
        self.router: Router | None = None
        self.fail_after = fail_after

    def declare(self, agency_code: str) -> None:
        pass

    def send(self, agency_code: str, event_type: str, body: bytes, delivery_id: str, headers=None) -> None:
        assert self.router.acknowledge(delivery_id, agency_code)["status"] == "acknowledged"
        if self.fail_after:
            raise DeliveryFailed("amqp: the broker's confirm was lost")


def _scheduled(db, channel: ConfirmingChannel) -> tuple[Router, str]:
    router = Router(db, EventStore(db), amqp=channel, http=None)
    channel.router = router
    with db.transaction() as cur:
        [delivery] = router.route(cur, submitted(f"G{uuid.uuid4().hex[:10]}", f"K{uuid.uuid4().hex[:6]}"))
    return router, delivery


def test_a_confirmation_before_the_sent_record_is_kept(router_store):
    router, delivery = _scheduled(router_store, ConfirmingChannel())
    assert router.attempt(delivery) == "acknowledged"
    with router_store.transaction() as cur:
        assert repository.get_delivery(cur, delivery)["status"] == "acknowledged"
    assert router_events(router_store, delivery) == ["DeliveryScheduled", "DeliveryAcknowledged", "DeliverySent"]


def test_a_confirmed_copy_is_not_retried_when_the_attempt_looked_failed(router_store):
    router, delivery = _scheduled(router_store, ConfirmingChannel(fail_after=True))
    assert router.attempt(delivery) == "acknowledged"
    with router_store.transaction() as cur:
        row = repository.get_delivery(cur, delivery)
        assert row["status"] == "acknowledged"
        assert delivery not in repository.due(cur, 1000)
    assert router_events(router_store, delivery) == ["DeliveryScheduled", "DeliveryAcknowledged"]
