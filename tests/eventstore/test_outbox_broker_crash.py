"""The broker crashes (SIGKILL) while the relay publishes and appends go on: once it is back,
every committed event is on the queue, none lost, copies only of unconfirmed ones.

Runs on a private RabbitMQ node (tests/router/broker.py): the shared broker is never touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import Counter

import pytest
from kombu import Connection

from portal_common.outbox import OutboxRelay
from tests.eventstore.amqp_helpers import bound_queue, take
from tests.eventstore.conftest import probes
from tests.router.broker import PrivateBroker, server_binary

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def broker(tmp_path):
    if server_binary() is None:
        pytest.skip("rabbitmq-server is not installed: no private broker node to crash")
    node = PrivateBroker(tmp_path / "rabbitmq-node").start()
    yield node
    node.stop()


def _crash(node: PrivateBroker) -> None:
    """SIGKILL the Erlang VM: no clean shutdown, as in a power cut of the broker host."""
    pid = node._beam_pid()
    assert pid, "the private broker wrote no pid file"
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        node.proc.wait(30)
    with contextlib.suppress(FileNotFoundError):
        (node.base / "node.pid").unlink()
    node.proc = None


def _depth(uri: str, queue: str) -> int:
    try:
        with Connection(uri, connect_timeout=2) as conn:
            return conn.default_channel.queue_declare(queue=queue, passive=True).message_count
    except Exception:
        return -1


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_broker_killed_mid_stream_then_restarted_nothing_committed_is_lost(log, broker):
    with bound_queue(broker.uri, log.schema) as (conn, queue):
        name = queue.name
        conn.release()
        relay = OutboxRelay(log.db.dsn, log.schema, broker.uri, batch_size=5, idle_wait=0.1)
        stop = threading.Event()
        thread = threading.Thread(target=relay.run, args=(stop.is_set,), daemon=True)
        thread.start()
        try:
            for i in range(6):
                log.append(f"dossier-{i}", 0, probes(i * 10, 5))
            _wait(lambda: _depth(broker.uri, name) >= 10, 60, "the first events on the queue")
            _crash(broker)
            for i in range(6, 10):  # commits go on while the broker is down
                log.append(f"dossier-{i}", 0, probes(i * 10, 5))
            broker.start()
            _wait(lambda: relay.state().backlog == 0, 120, "the relay to catch up after the restart")
        finally:
            stop.set()
            thread.join(30)
            relay.close()
        with Connection(broker.uri, connect_timeout=10) as again:
            messages = take(again.SimpleQueue(name).queue(again.default_channel), 50, timeout=60)
            again.default_channel.queue_delete(name)
    committed = [str(e.event_id) for e in log.iter_all()]
    received = Counter(m.properties["message_id"] for m in messages)
    assert len(committed) == 50
    assert set(received) == set(committed), f"{len(set(committed) - set(received))} committed events lost"
    assert all(m.properties["delivery_mode"] == 2 for m in messages)
