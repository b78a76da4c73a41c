"""The services' event queues declared before any service runs (``deploy.topology``), on a
RabbitMQ vhost of the test's own: what is published then waits for its consumer."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from kombu import Connection, Exchange, Producer

from deploy.launcher import SERVICE_CLASSES, declare_queues
from deploy.topology import declare_event_queues
from tests.conftest import private_vhost


@pytest.fixture
def fresh_vhost(infrastructure):
    yield from private_vhost(infrastructure["amqp"], f"portal_test_topology_{uuid.uuid4().hex[:8]}",
                             "the topology tests")


def _get(conn: Connection, queue: str) -> dict | None:
    message = conn.default_channel.basic_get(queue, no_ack=True)
    return None if message is None else json.loads(message.body)


def test_a_seed_event_published_before_any_service_waits_in_each_consumers_queue(fresh_vhost):
    names = declare_event_queues(fresh_vhost, SERVICE_CLASSES.values())
    assert "evt-catalog-AgencyDissolved--router.on_agency_dissolved" in names
    assert "evt-dossier-DossierSubmitted--router.on_submitted" in names
    assert "evt-dossier-DossierSubmitted--identity.notify_submitted" in names
    assert not any("--gateway." in n for n in names)  # broadcast queues belong to their process
    with Connection(fresh_vhost) as conn:
        envelope = {"event_id": str(uuid.uuid4()), "event_type": "AgencyDissolved",
                    "data": {"code": "P62-SKHDT", "successor": "P62-STC"}}
        Producer(conn.default_channel).publish(
            envelope, exchange=Exchange("catalog.events", type="topic", durable=True), routing_key="AgencyDissolved",
            serializer="json")
        deadline, got = time.monotonic() + 5, None
        while got is None and time.monotonic() < deadline:
            got = _get(conn, "evt-catalog-AgencyDissolved--router.on_agency_dissolved")
        assert got == envelope
        assert _get(conn, "evt-catalog-AgencyRegistered--router.on_agency_registered") is None  # its own type only


def test_declaring_again_changes_nothing(fresh_vhost):
    first = declare_event_queues(fresh_vhost, SERVICE_CLASSES.values())
    assert declare_event_queues(fresh_vhost, SERVICE_CLASSES.values()) == first
    assert len(first) == len(set(first)) > 30


def test_a_broker_that_is_not_there_is_said_and_left_to_the_services(capsys):
    with pytest.raises(OSError):
        declare_event_queues("amqp://guest:guest@127.0.0.1:1/", ["services.router.service:RouterService"])
    declare_queues("amqp://guest:guest@127.0.0.1:1/")  # LocalSystem.start goes on
    assert "were not declared ahead" in capsys.readouterr().out
