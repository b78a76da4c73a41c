"""Small RabbitMQ helpers for the outbox and consumer tests: a queue bound to a log's
exchange, draining it, and a relay that publishes a log's backlog."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator

from kombu import Connection, Queue

from portal_common.outbox import OutboxRelay, event_exchange


@contextlib.contextmanager
def bound_queue(amqp_uri: str, service: str) -> Iterator[tuple[Connection, Queue]]:
    """A durable queue bound to ``<service>.events`` with ``#`` (deleted afterwards)."""
    conn = Connection(amqp_uri, connect_timeout=10)
    queue = Queue(f"test-{service}-{uuid.uuid4().hex[:8]}", exchange=event_exchange(service),
                  routing_key="#", durable=True, auto_delete=False)
    queue = queue(conn.channel())
    queue.declare()
    try:
        yield conn, queue
    finally:
        with contextlib.suppress(Exception):
            queue(conn.channel()).delete()
        conn.release()


def take(queue: Queue, expected: int, timeout: float = 30.0, ack: bool = True) -> list:
    """Get messages until ``expected`` have arrived (then whatever else is already queued)."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = queue.get(no_ack=False)
        if message is None:
            if len(got) >= expected:
                break
            time.sleep(0.02)
            continue
        if ack:
            message.ack()
        got.append(message)
    return got


def publish_all(log, amqp_uri: str, **relay_options) -> int:
    """A relay takes the lead, publishes everything committed to ``log`` and closes; how many
    events it published."""
    relay = OutboxRelay(log.db.dsn, log.schema, amqp_uri, **relay_options)
    try:
        relay.acquire_leadership()
        return relay.drain()
    finally:
        relay.close()
