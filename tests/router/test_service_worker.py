"""Unit tests of one router worker: each entrypoint hands its input to the router's
application layer, which validates it before touching the database and refuses garbage
with typed errors."""

from __future__ import annotations

from unittest import mock

import pytest
from nameko.testing.services import worker_factory

from portal_common.errors import InvalidInput
from services.router import repository
from services.router.application import Router
from services.router.domain.routing import Route
from services.router.service import RouterService
from tests.support.fakes import RecordingDatabase


@pytest.fixture
def router():
    return Router(RecordingDatabase(), mock.MagicMock(), amqp=mock.MagicMock(), http=None)


def test_entrypoints_hand_their_input_to_the_router():
    worker = worker_factory(RouterService)
    worker.configure_route({"actor": {"kind": "operator"}}, {"agency_code": "A"})
    worker.router.configure_route.assert_called_once_with({"actor": {"kind": "operator"}}, {"agency_code": "A"})
    worker.on_submitted({"event_id": "e"})
    worker.router.take_dossier_event.assert_called_once_with({"event_id": "e"})


def test_valid_route_reaches_the_router_as_a_route(router, monkeypatch):
    saved = []
    monkeypatch.setattr(repository, "save_route", lambda cur, route: saved.append(route))
    router.configure_route({"actor": {"kind": "operator", "id": "op"}},
                           {"agency_code": "A", "channel": "http", "endpoint": "https://a.example/cb",
                            "secret_ref": "AGENCY_SECRET_A"})
    [route] = saved
    assert route == Route("A", "http", "https://a.example/cb", "AGENCY_SECRET_A", True)
    context = router.store.append.call_args.kwargs["context"]
    assert context.actor.kind == "operator"


@pytest.mark.parametrize("route", [None, [], "x", {"agency_code": "A"}, {"agency_code": "A", "channel": 1}])
def test_invalid_route_never_reaches_the_router(router, route):
    with pytest.raises(InvalidInput):
        router.configure_route(None, route)
    assert router.db.transactions == 0
    router.store.append.assert_not_called()


def test_redeliver_checks_the_id_first(router):
    with pytest.raises(InvalidInput):
        router.redeliver("../../etc/passwd")
    assert router.db.transactions == 0


@pytest.mark.parametrize("message", [None, "text", [], {"data": {}}])
def test_messages_without_an_event_id_are_dropped(router, message, monkeypatch):
    monkeypatch.setattr(router, "route", mock.Mock())
    monkeypatch.setattr(router, "attempt", mock.Mock())
    router.on_dossier_event(message)
    router.route.assert_not_called()
    router.attempt.assert_not_called()
    assert router.db.transactions == 0


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
