"""The gateway listens only once RPC replies can reach it.

nameko starts a container's extensions together. Before this order was kept, the gateway
could accept a request and send its RPC before its reply queue was bound: the broker dropped
the reply and the request waited out ``RPC_TIMEOUT`` (seen at ``make up`` when the payment
service's first settlement check called the gateway as it started)."""

from __future__ import annotations

import eventlet
import pytest
from nameko.messaging import QueueConsumer

from gateway.http import server as server_module
from gateway.http.server import GatewayServer


class _Container:
    """What ``GatewayServer.start`` reads of its container, and nothing that would listen."""

    def __init__(self, *extensions):
        self.extensions = set(extensions)
        self.config = {"WEB_SERVER_ADDRESS": "127.0.0.1:0"}
        self.spawned = []

    def spawn_managed_thread(self, run):
        self.spawned.append(run)


class _Socket:
    def settimeout(self, value):
        pass


@pytest.fixture
def listened(monkeypatch) -> list:
    """The addresses the server asked to listen on (no socket is opened)."""
    calls: list = []
    monkeypatch.setattr(server_module.eventlet, "listen", lambda *args, **kwargs: calls.append(args) or _Socket())
    monkeypatch.setattr(GatewayServer, "get_wsgi_server", lambda self, sock, app: "wsgi server")
    return calls


def test_the_server_listens_only_after_the_queue_consumer_consumes(listened):
    consumer, server = QueueConsumer(), GatewayServer()
    server.container = _Container(consumer, server)
    starting = eventlet.spawn(server.start)
    eventlet.sleep(0.05)
    assert listened == [] and server.container.spawned == []  # the reply queue is not there yet
    consumer._consumers_ready.send(None)
    starting.wait()
    assert len(listened) == 1 and server.container.spawned == [server.run]


def test_a_container_without_a_queue_consumer_listens_at_once(listened):
    server = GatewayServer()
    server.container = _Container(server)
    with eventlet.Timeout(2):
        server.start()
    assert len(listened) == 1
