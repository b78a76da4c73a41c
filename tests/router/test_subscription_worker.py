"""Unit tests of one router worker's subscription entrypoints: each hands its input to the
application layer, which refuses bad input with typed errors before it calls a callback or
begins a transaction."""

from __future__ import annotations

from unittest import mock

import pytest
from nameko.testing.services import worker_factory

from portal_common.errors import InvalidInput, NotFound
from services.router.callbacks import CallbackRefused
from services.router.service import RouterService
from services.router.subscriptions import Subscriptions
from tests.support.fakes import RecordingDatabase


def test_subscription_entrypoints_hand_their_input_to_the_router():
    worker = worker_factory(RouterService)
    worker.create_subscription({"actor": None}, "AG", {"callback_url": "x"})
    worker.router.create_subscription.assert_called_once_with({"actor": None}, "AG", {"callback_url": "x"})
    worker.redeliver_subscription(None, "sub", 7)
    worker.router.redeliver_subscription.assert_called_once_with(None, "sub", 7)
    worker.agency_events("AG", 3, 10, 0)
    worker.router.subs.read.assert_called_once_with("AG", 3, 10, 0)
    worker.on_received({"event_id": "e"})
    worker.router.take_dossier_event.assert_called_once_with({"event_id": "e"})
    worker.deliver_subscriptions()
    worker.router.run_subscriptions.assert_called_once_with()


@pytest.fixture
def subs():
    client = mock.MagicMock()
    return Subscriptions(RecordingDatabase(), mock.MagicMock(), mock.MagicMock(), client)


@pytest.mark.parametrize("body", [
    None, [], {}, {"callback_url": "https://a.example/x"},
    {"callback_url": "https://a.example/x", "channels": "dossiers"},
    {"callback_url": "https://a.example/x", "channels": ["dossiers"], "filters": {"colour": "red"}},
    {"callback_url": "https://a.example/x", "channels": ["dossiers"], "filters": []},
    {"callback_url": "https://a.example/x", "channels": ["dossiers"], "auth_header": "Bearer x\r\nX-Evil: 1"},
    {"callback_url": "https://a.example/\x00", "channels": ["dossiers"]},
])
def test_bad_subscriptions_are_refused_before_any_call_or_transaction(subs, body):
    with pytest.raises(InvalidInput):
        subs.create(mock.MagicMock(), "AG", body)
    subs.client.verify.assert_not_called()
    assert subs.db.transactions == 0


def test_a_refused_callback_makes_nothing(subs):
    subs.client.verify.side_effect = CallbackRefused("the callback host resolves to a loopback address")
    with pytest.raises(InvalidInput) as refused:
        subs.create(mock.MagicMock(), "AG", {"callback_url": "https://a.example/x", "channels": ["dossiers"]})
    assert refused.value.code == "callback_refused" and subs.db.transactions == 0


@pytest.mark.parametrize("query", [(-1, 10, 0), (0, 0, 0), (0, 1001, 0), (0, 10, 31), ("x", 10, 0)])
def test_bad_feed_queries_are_refused(subs, query):
    with pytest.raises(InvalidInput):
        subs.read("AG", *query)
    assert subs.db.transactions == 0


@pytest.mark.parametrize("position", [0, -3, "7", None, True])
def test_a_rewind_needs_a_position(subs, position):
    with pytest.raises(InvalidInput):
        subs.rewind(mock.MagicMock(), "0c3b4a52-8f7c-4b1e-9d59-0d8a5c1e2f11", position)


def test_a_subscription_id_that_is_not_a_uuid_is_simply_not_found(subs):
    with pytest.raises(NotFound):
        subs.get("AG", "../../etc")
