"""Unit tests of one router worker (nameko's worker_factory): the entrypoints validate their
input before touching the router and refuse garbage with typed errors."""

from __future__ import annotations

import pytest
from nameko.testing.services import worker_factory

from portal_common.errors import InvalidInput
from services.router.domain import Route
from services.router.service import RouterService


@pytest.fixture
def worker():
    return worker_factory(RouterService)


def test_valid_route_reaches_the_router_as_a_route(worker):
    worker.router.configure_route.return_value = {"agency_code": "A"}
    worker.configure_route({"actor": {"kind": "operator", "id": "op"}},
                           {"agency_code": "A", "channel": "http", "endpoint": "https://a.example/cb",
                            "secret_ref": "AGENCY_SECRET_A"})
    route, context = worker.router.configure_route.call_args.args
    assert route == Route("A", "http", "https://a.example/cb", "AGENCY_SECRET_A", True)
    assert context.actor.kind == "operator"


@pytest.mark.parametrize("route", [None, [], "x", {"agency_code": "A"}, {"agency_code": "A", "channel": 1}])
def test_invalid_route_never_reaches_the_router(worker, route):
    with pytest.raises(InvalidInput):
        worker.configure_route(None, route)
    worker.router.configure_route.assert_not_called()


def test_redeliver_checks_the_id_first(worker):
    with pytest.raises(InvalidInput):
        worker.redeliver("../../etc/passwd")
    worker.router.redeliver.assert_not_called()


@pytest.mark.parametrize("message", [None, "text", [], {"data": {}}])
def test_messages_without_an_event_id_are_dropped(worker, message):
    worker.on_submitted(message)
    worker.router.route.assert_not_called()
    worker.router.attempt.assert_not_called()


class _MessageOnADeadSocket:
    """A message whose connection the broker has just reset (the object still looks alive)."""

    channel = type("Channel", (), {"connection": object()})()

    def ack(self):
        raise ConnectionResetError(104, "Connection reset by peer")

    def requeue(self):
        raise ConnectionResetError(104, "Connection reset by peer")


def test_ack_on_a_reset_connection_does_not_kill_the_container():
    from nameko.messaging import QueueConsumer

    from portal_common.entrypoints import ReconnectingEventHandler, ReconnectingQueueConsumer

    with pytest.raises(ConnectionResetError):  # nameko's own consumer lets it escape (the container dies)
        QueueConsumer().ack_message(_MessageOnADeadSocket())
    ReconnectingQueueConsumer().ack_message(_MessageOnADeadSocket())
    ReconnectingQueueConsumer().requeue_message(_MessageOnADeadSocket())
    for name in ("on_submitted", "on_forwarded", "on_supplemented", "on_withdrawn", "on_agency_registered",
                 "on_agency_amended", "on_agency_dissolved"):
        handlers = getattr(RouterService, name).nameko_entrypoints
        assert handlers and all(isinstance(h, ReconnectingEventHandler) for h in handlers), name
