"""The gateway listens only once RPC replies can reach it.

nameko starts a container's extensions together. Before this order was kept, the gateway
could accept a request and send its RPC before its reply queue was bound: the broker dropped
the reply and the request waited out ``RPC_TIMEOUT`` (seen at ``make up`` when the payment
service's first settlement check called the gateway as it started)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import eventlet
import pytest
from nameko.messaging import QueueConsumer

from deploy.launcher import SERVICE_CLASSES
from gateway.http import server as server_module
from gateway.http.server import GatewayServer
from tests.chaos.proxy import FaultProxy, free_port
from tests.support.http import http
from tests.support.processes import stop, wait_for

ROOT = Path(__file__).resolve().parents[2]


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


def _listens(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


@pytest.mark.slow
@pytest.mark.integration
def test_a_gateway_whose_broker_answers_late_listens_only_then_and_its_first_rpc_is_answered(system, tmp_path):
    """On the real broker: a second gateway reaches RabbitMQ through a proxy that holds its
    start-up connections (its reply queue cannot be declared) and lets later ones through (a
    request's RPC could be published). The code before this order listened at once, and such a
    request's reply was dropped: 503 after ``RPC_TIMEOUT``. Now nothing listens until the held
    connections go through, and the first request then gets its answer."""
    broker = urllib.parse.urlsplit(system.amqp_uri)
    port, log = free_port(), tmp_path / "gateway.log"
    with FaultProxy(broker.port or 5672, name="late-broker") as proxy, open(log, "wb") as out:
        proxy.hold_new()
        env = {**system.env("gateway", 9), "GATEWAY_PORT": str(port), "RPC_TIMEOUT": "3",
               "AMQP_URI": broker._replace(netloc=f"{broker.netloc.rsplit('@', 1)[0]}@127.0.0.1:{proxy.port}").geturl()}
        gateway = subprocess.Popen(
            [sys.executable, "-m", "nameko", "run", "--config", "gateway/config.yml", SERVICE_CLASSES["gateway"]],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(lambda: proxy.held >= 1 or gateway.poll() is not None, timeout=60, what="the broker reached")
            proxy.pass_new()  # a request's RPC would now go out, and its reply have no queue
            time.sleep(3)  # ample for a server that does not wait to have listened
            assert gateway.poll() is None, log.read_text()
            if _listens(port):
                status, body, _ = http(f"http://127.0.0.1:{port}/api/v1/procedures?page_size=1")
                pytest.fail(f"listened before its reply queue was there; a request got {status} {body}")
            assert proxy.release() >= 1
            wait_for(lambda: _listens(port) or gateway.poll() is not None, timeout=60, what="the gateway listening")
            status, body, _ = http(f"http://127.0.0.1:{port}/api/v1/procedures?page_size=1")
            assert status == 200 and body["items"], body
        finally:
            stop(gateway)
    assert "RpcTimeout" not in log.read_text()
