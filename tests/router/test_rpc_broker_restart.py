"""RabbitMQ restarted while an RPC is in flight: the service process lives on and answers.

nameko's own RPC entrypoint acknowledges the request on the connection it came from; when
that connection died with the broker, the ack raises ``ConnectionResetError`` and the
container exits. ``portal_common.entrypoints.rpc`` lets the ack go (the broker requeued the
request). Runs a small service (``rpc_probe_service.py``) as a real ``nameko run`` process on
a private broker node (``broker.py``): the shared broker is never stopped.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from tests.support.processes import stop, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _call(uri: str, method: str, *args, timeout: float = 5.0):
    with ClusterRpcProxy({"AMQP_URI": uri}, timeout=timeout) as proxy:
        return getattr(proxy.rpc_probe, method)(*args)


def _answers(uri: str, method: str, expected: int):
    try:
        return _call(uri, method) == expected
    except Exception:
        return False


@pytest.fixture
def probe(broker, tmp_path):
    log = open(tmp_path / "probe.log", "wb")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "nameko", "run", "--broker", broker.uri, "tests.router.rpc_probe_service"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: proc.poll() is not None or _answers(broker.uri, "pid", proc.pid), timeout=60,
                 interval=0.3, what="the probe service")
        assert proc.poll() is None, (tmp_path / "probe.log").read_text()
        yield proc
    finally:
        stop(proc)
        log.close()


@pytest.mark.parametrize("crash", [False, True], ids=["restart", "crash"])
def test_rpc_service_answers_again_after_a_broker_restart_mid_call(broker, probe, tmp_path, crash):
    marker, log = tmp_path / "marker", tmp_path / "probe.log"
    assert _call(broker.uri, "pid_through_proxy") == probe.pid
    assert _call(broker.uri, "reconnections") == 0  # the first connect is no reconnection

    # a call in flight when the broker goes: its reply cannot be published and its request
    # cannot be acknowledged; the caller's own connection dies too, its answer is moot
    def call_and_lose_the_answer() -> None:
        with contextlib.suppress(Exception):
            _call(broker.uri, "hold", str(marker), broker.port, timeout=300)

    caller = threading.Thread(target=call_and_lose_the_answer, daemon=True)
    caller.start()
    wait_for(marker.exists, timeout=30, what="the held call under way")

    broker.stop(crash=crash)
    try:
        # the broker stays away until the service has given up publishing that reply (nameko's
        # own RPC lets that error kill the container, which then exits once the broker is back)
        wait_for(lambda: probe.poll() is not None or any(
            line in log.read_text(errors="replace") for line in ("RPC reply lost", "thread exited with error")),
            timeout=120, interval=0.2, what="the reply given up")
    finally:
        broker.start()
    assert "thread exited with error" not in log.read_text(errors="replace"), log.read_text()[-3000:]

    wait_for(lambda: probe.poll() is not None or _answers(broker.uri, "pid", probe.pid), timeout=90,
             interval=0.5, what="an answer after the restart")
    assert probe.poll() is None, "the service died with the broker: " + log.read_text()[-3000:]
    assert _call(broker.uri, "pid_through_proxy", timeout=30) == probe.pid  # its reply listener is back too
    # what the process keeps from broadcast events heard of the reconnection (the dossier's
    # catalog cache drops everything then)
    assert _call(broker.uri, "reconnections") >= 1
    # the request whose reply was lost came again once the broker was back, and was answered
    wait_for(lambda: marker.read_text().count("called") >= 2, timeout=60, what="the held call again")
    assert probe.poll() is None


@pytest.mark.parametrize("path", ["services.catalog.service:CatalogService", "services.dossier.service:DossierService",
                                  "services.identity.service:IdentityService", "services.router.service:RouterService"])
def test_every_service_consumes_through_the_one_reconnecting_queue_consumer(path):
    import importlib

    from nameko.containers import ServiceContainer
    from nameko.messaging import QueueConsumer
    from nameko.rpc import ReplyListener, Rpc, RpcConsumer

    from portal_common.entrypoints import (
        ReconnectingQueueConsumer,
        ReconnectingReplyListener,
        ReconnectingRpc,
        ReconnectingRpcConsumer,
    )

    module, name = path.split(":")
    container = ServiceContainer(getattr(importlib.import_module(module), name), {"AMQP_URI": "memory://"})
    consumers = [e for e in container.extensions if isinstance(e, QueueConsumer)]
    assert [type(c) for c in consumers] == [ReconnectingQueueConsumer]  # one consumer, the resilient one
    rpcs = [e for e in container.extensions if isinstance(e, Rpc)]
    assert rpcs and all(type(e) is ReconnectingRpc for e in rpcs)
    assert any(e.method_name == "health" for e in rpcs)
    assert all(type(e) is ReconnectingRpcConsumer for e in container.extensions if isinstance(e, RpcConsumer))
    assert all(type(e) is ReconnectingReplyListener for e in container.extensions if isinstance(e, ReplyListener))
    if name == "DossierService":  # the catalog cache listens to that one consumer's reconnections
        from services.dossier.catalog_cache import CatalogCache

        cache = next(e for e in container.extensions if isinstance(e, CatalogCache))
        assert cache.queue_consumer is consumers[0]
