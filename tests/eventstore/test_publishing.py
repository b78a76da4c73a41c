"""Held producers (``portal_common.publishing``) against the real broker: nameko's publishers
keep one connection and channel from one message to the next, never reuse one that failed,
and still reconnect when the broker dropped a resting one; and RPC replies, encoded once."""

from __future__ import annotations

import socket
import sys
import threading
import uuid

import kombu.messaging
import kombu.serialization
import nameko.amqp.publish
import pytest
from kombu import Connection, Exchange, Queue
from nameko.amqp.publish import Publisher, UndeliverableMessage
from nameko.rpc import get_rpc_exchange

from portal_common import publishing
from portal_common.entrypoints import UnconfirmedResponder
from tests.eventstore.amqp_helpers import take


@pytest.fixture
def held(monkeypatch):
    """nameko's publishers on held producers for this test only; every pool closed after."""
    monkeypatch.setattr(nameko.amqp.publish, "get_producer", nameko.amqp.publish.get_producer)
    publishing.install()
    yield
    publishing.close_all()


@pytest.fixture
def queue(amqp_uri):
    """A queue of the test's own, bound to a direct exchange of the test's own."""
    name = f"test-publishing-{uuid.uuid4().hex[:8]}"
    exchange = Exchange(name, type="direct", durable=False, auto_delete=False)
    conn = Connection(amqp_uri, connect_timeout=10)
    bound = Queue(name, exchange=exchange, routing_key="here", durable=False, auto_delete=False)(conn.channel())
    bound.declare()
    yield exchange, bound
    bound.delete()
    exchange(conn.channel()).delete()
    conn.release()


def _pool(amqp_uri: str, confirms: bool = True) -> publishing.ProducerPool:
    return publishing.pool_for(amqp_uri, confirms, None, None, Publisher.transport_options)


def test_install_puts_the_held_producer_in_nameko_s_place(held):
    assert nameko.amqp.publish.get_producer is publishing.held_producer


def test_consecutive_messages_share_one_producer_and_channel(held, amqp_uri, queue):
    exchange, bound = queue
    publisher = Publisher(amqp_uri)
    publisher.publish({"n": 0}, exchange=exchange, routing_key="here")
    pool = _pool(amqp_uri)
    channel = pool._idle[0].channel
    for n in range(1, 20):
        publisher.publish({"n": n}, exchange=exchange, routing_key="here")
    assert pool.created == 1
    assert pool._idle[0].channel is channel
    got = take(bound, 20)
    assert sorted(m.payload["n"] for m in got) == list(range(20))


def test_confirmed_and_unconfirmed_publishers_keep_pools_of_their_own(held, amqp_uri, queue):
    exchange, bound = queue
    Publisher(amqp_uri, use_confirms=True).publish({"n": 1}, exchange=exchange, routing_key="here")
    Publisher(amqp_uri, use_confirms=False).publish({"n": 2}, exchange=exchange, routing_key="here")
    confirmed, unconfirmed = _pool(amqp_uri, True), _pool(amqp_uri, False)
    assert confirmed is not unconfirmed
    assert confirmed._idle[0].connection.transport_options["confirm_publish"] is True
    assert unconfirmed._idle[0].connection.transport_options["confirm_publish"] is False
    assert sorted(m.payload["n"] for m in take(bound, 2)) == [1, 2]


def test_a_returned_message_drops_its_producer_and_the_next_message_is_confirmed_on_a_new_one(
        held, amqp_uri, queue):
    exchange, bound = queue
    publisher = Publisher(amqp_uri)
    publisher.publish({"n": 0}, exchange=exchange, routing_key="here")
    pool = _pool(amqp_uri)
    first = pool._idle[0]
    with pytest.raises(UndeliverableMessage):
        publisher.publish({"n": "lost"}, exchange=exchange, routing_key="nowhere", mandatory=True)
    assert pool._idle == []
    assert first.connection.connected is False
    publisher.publish({"n": 1}, exchange=exchange, routing_key="here", mandatory=True)
    assert pool.created == 2
    assert sorted(m.payload["n"] for m in take(bound, 2)) == [0, 1]


def test_a_resting_producer_whose_connection_the_broker_dropped_reconnects(held, amqp_uri, queue):
    exchange, bound = queue
    publisher = Publisher(amqp_uri)
    publisher.publish({"n": 0}, exchange=exchange, routing_key="here")
    resting = _pool(amqp_uri)._idle[0]
    resting.connection.connection.sock.shutdown(socket.SHUT_RDWR)  # as when the broker goes away and back
    publisher.publish({"n": 1}, exchange=exchange, routing_key="here")
    assert sorted(m.payload["n"] for m in take(bound, 2)) == [0, 1]


def test_concurrent_publishers_use_at_most_the_limit_of_producers(held, amqp_uri, queue, monkeypatch):
    exchange, bound = queue
    monkeypatch.setattr("kombu.pools.get_limit", lambda: 3)
    publisher = Publisher(amqp_uri)
    in_use, most = [0], [0]
    lock = threading.Lock()
    real = publishing.ProducerPool.producer

    def counting(self):
        with real(self) as producer:
            with lock:
                in_use[0] += 1
                most[0] = max(most[0], in_use[0])
            try:
                yield producer
            finally:
                with lock:
                    in_use[0] -= 1

    monkeypatch.setattr(publishing.ProducerPool, "producer", publishing.contextmanager(counting))
    errors = []

    def send(start: int) -> None:
        try:
            for n in range(start, start + 10):
                publisher.publish({"n": n}, exchange=exchange, routing_key="here")
        except Exception as exc:  # reported below: a test thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(k * 10,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert 1 <= most[0] <= 3
    assert _pool(amqp_uri).created <= 3
    assert sorted(m.payload["n"] for m in take(bound, 80)) == list(range(80))


class _Request:
    """The parts of an RPC request message a responder reads."""

    def __init__(self, reply_to: str):
        self.properties = {"content_type": "application/json", "reply_to": reply_to,
                           "correlation_id": str(uuid.uuid4())}


@pytest.fixture
def reply_queue(amqp_uri):
    """A queue bound to nameko's RPC exchange by a reply routing key of the test's own."""
    routing_key = f"test-reply-{uuid.uuid4().hex[:8]}"
    conn = Connection(amqp_uri, connect_timeout=10)
    bound = Queue(routing_key, exchange=get_rpc_exchange({}), routing_key=routing_key, durable=False,
                  auto_delete=False)(conn.channel())
    bound.declare()
    yield routing_key, bound
    bound.delete()
    conn.release()


@pytest.fixture
def encodings(monkeypatch):
    """Counts every encoding of a message body, by the responder or by kombu's producer."""
    counted = []

    def counting(data, serializer=None):
        counted.append(serializer)
        return real(data, serializer)

    real = kombu.serialization.dumps
    monkeypatch.setattr(kombu.serialization, "dumps", counting)
    monkeypatch.setattr(kombu.messaging, "dumps", counting)
    return counted


def test_a_reply_is_encoded_once_and_reaches_its_caller(held, amqp_uri, reply_queue, encodings):
    routing_key, bound = reply_queue
    request = _Request(routing_key)
    responder = UnconfirmedResponder(amqp_uri, get_rpc_exchange({}), "json", request)
    result = {"code": "000.00.00.H01-261206-0001", "tên": "Nguyễn Văn A", "n": [1, 2.5, None]}
    assert responder.send_response(result, None) == (result, None)
    assert encodings == ["json"]
    [reply] = take(bound, 1)
    assert reply.properties["correlation_id"] == request.properties["correlation_id"]
    assert reply.content_type == "application/json"
    assert reply.payload == {"result": result, "error": None}


def test_a_reply_that_cannot_be_encoded_answers_unserializable_value(held, amqp_uri, reply_queue):
    routing_key, bound = reply_queue
    responder = UnconfirmedResponder(amqp_uri, get_rpc_exchange({}), "json", _Request(routing_key))
    result, exc_info = responder.send_response({"when": object()}, None)
    assert result is None and exc_info is not None
    [reply] = take(bound, 1)
    assert reply.payload["result"] is None
    assert reply.payload["error"]["exc_type"] == "UnserializableValueError"


def test_an_error_reply_carries_the_service_s_exception(held, amqp_uri, reply_queue):
    routing_key, bound = reply_queue
    responder = UnconfirmedResponder(amqp_uri, get_rpc_exchange({}), "json", _Request(routing_key))
    try:
        raise ValueError("mã hồ sơ không hợp lệ")
    except ValueError:
        exc_info = sys.exc_info()
    assert responder.send_response(None, exc_info) == (None, exc_info)
    [reply] = take(bound, 1)
    assert reply.payload["result"] is None
    assert reply.payload["error"]["exc_type"] == "ValueError"
    assert reply.payload["error"]["value"] == "mã hồ sơ không hợp lệ"
