"""The outbox relay: publishes a service's event log to RabbitMQ, at least once, in order.

The log itself is the outbox. An event is in the outbox from the moment its append commits;
the relay reads the log after its checkpoint, publishes each event as a persistent message
on the service's topic exchange (``<service>.events``, routing key = event type) with
publisher confirms, and only after the broker has confirmed a batch does it move the
checkpoint past it. A batch is sent whole and then its confirms are awaited together (one
wait per batch, not one per event); a nack or a missing confirm fails the batch, which is
published again from the checkpoint. Whatever crashes (relay, broker, service, database), the next run starts
again from the last checkpoint: a committed event is always published, possibly twice, and
carries its ``event_id`` so consumers drop the second copy. An event that was never committed
is never in the log, so it is never published.

Only one relay per log publishes at a time: each holds a PostgreSQL session advisory lock
while it works, and a second instance waits for it (a hot standby).
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg2
from kombu import Connection, Exchange, Producer

from portal_common import jsoncodec
from portal_common.db import Prepared, connect
from portal_common.eventstore.events import RecordedEvent
from portal_common.eventstore.store import read_after
from portal_common.prepared import PreparingConnection

log = logging.getLogger(__name__)


def event_exchange(service: str) -> Exchange:
    """The topic exchange a service's events go to; the same declaration nameko uses."""
    return Exchange(f"{service}.events", type="topic", durable=True, auto_delete=False,
                    delivery_mode=2)


@dataclass(frozen=True)
class OutboxState:
    """How far behind the relay is: for metrics and ``portal-ops outbox``."""

    checkpoint: int
    head: int
    backlog: int
    oldest_unpublished_age_s: float | None


def read_state(cursor: Any, schema: str, relay_name: str = "amqp") -> OutboxState:
    """Checkpoint, head, backlog and oldest unpublished age of one log, on the caller's (plain)
    cursor: the one reading the relay, ``portal-ops outbox`` and the metrics share."""
    cursor.execute(
        f"SELECT coalesce((SELECT position FROM {schema}.outbox_checkpoints "
        f"WHERE relay = %s), 0), coalesce((SELECT max(position) FROM {schema}.events), 0)",
        (relay_name,),
    )
    checkpoint, head = cursor.fetchone()
    cursor.execute(
        f"SELECT extract(epoch FROM now() - recorded_at) FROM {schema}.events "
        "WHERE position > %s ORDER BY position LIMIT 1",
        (checkpoint,),
    )
    row = cursor.fetchone()
    return OutboxState(int(checkpoint), int(head), max(int(head) - int(checkpoint), 0),
                       float(row[0]) if row else None)


def publish_event(producer: Producer, event: RecordedEvent, routing_key: str, **headers: Any) -> None:
    """Publish one logged event as a persistent message, with the headers every consumer reads
    (``headers`` adds to them); returns once the broker confirmed it on a confirming channel."""
    message_headers = {
        "event_type": event.event_type,
        "schema_version": event.schema_version,
        "stream_id": event.stream_id,
        "position": event.position,
        **(event.metadata.get("attributes") or {}),
        **headers,
    }
    correlation_id = event.metadata.get("correlation_id")
    if correlation_id:
        message_headers["nameko.correlation_id"] = correlation_id
    producer.publish(
        jsoncodec.dumps(event.envelope()),  # read from the log: JSON's own types only
        routing_key=routing_key,
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=2,
        message_id=str(event.event_id),
        type=event.event_type,
        headers=message_headers,
        retry=False,
    )


class OutboxRelay:
    """Publish one service's log to its exchange, from a stored checkpoint."""

    def __init__(
        self,
        dsn: str,
        schema: str,
        amqp_uri: str,
        exchange_service: str | None = None,
        relay_name: str = "amqp",
        batch_size: int = 500,
        idle_wait: float = 1.0,
    ):
        self.dsn = dsn
        self.schema = schema
        self.amqp_uri = amqp_uri
        self.exchange = event_exchange(exchange_service or schema)
        self.relay_name = relay_name
        self.batch_size = batch_size
        self.idle_wait = idle_wait
        self.published_total = 0
        self._db = None
        self._amqp: Connection | None = None
        self._producer: Producer | None = None
        self._is_leader = False
        self._checkpoint: int | None = None  # known while leader: nobody else moves it then
        self._next_batch: list[RecordedEvent] | None = None  # read with the last checkpoint move
        self._unconfirmed: set[int] = set()
        self._sent = 0
        self._nacked = False
        self.confirm_timeout = 30.0
        # One PostgreSQL connection serves the relay loop and callers of state()/checkpoint()
        # (metrics, ops, tests) from other threads; psycopg2 must not see two of them at once.
        self._db_lock = threading.RLock()
        # Test hook: called after a batch is confirmed, before the checkpoint moves.
        self.after_publish: Callable[[list[RecordedEvent]], None] | None = None

    # -- connections -------------------------------------------------------------------

    def _database(self):
        if self._db is None or self._db.closed:
            self._db = connect(self.dsn, self.schema, application_name=f"relay-{self.schema}",
                               connection_factory=PreparingConnection)
            self._db.autocommit = True
            self._is_leader = False
        return self._db

    def _producer_for(self) -> Producer:
        if self._producer is None:
            self._amqp = Connection(self.amqp_uri, connect_timeout=5, heartbeat=0)
            channel = self._amqp.channel()
            channel.confirm_select()  # confirms are awaited per batch (_confirm), not per message
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            self._unconfirmed, self._sent, self._nacked = set(), 0, False
            self.exchange(channel).declare()
            self._producer = Producer(channel, exchange=self.exchange)
        return self._producer

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self._unconfirmed = {t for t in self._unconfirmed if t > delivery_tag}
        else:
            self._unconfirmed.discard(delivery_tag)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._nacked = True
        self._on_ack(delivery_tag, multiple)

    def _confirm(self) -> None:
        """Wait until the broker confirmed every message sent since the last wait."""
        deadline = time.monotonic() + self.confirm_timeout
        while self._unconfirmed:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the broker did not confirm {len(self._unconfirmed)} messages")
            with contextlib.suppress(socket.timeout):
                self._amqp.drain_events(timeout=min(left, 1.0))
        if self._nacked:
            self._nacked = False
            raise ConnectionError("the broker refused (nacked) a message of the batch")

    def close(self) -> None:
        """Drop both connections (releases leadership).

        Waits a moment for a state() or batch in flight on another thread; a kill does not
        wait longer than that for a connection stuck on a dead network.
        """
        locked = self._db_lock.acquire(timeout=2.0)
        try:
            if self._amqp is not None:
                with contextlib.suppress(Exception):
                    self._amqp.release()
            self._amqp = self._producer = None
            self._checkpoint = self._next_batch = None
            if self._db is not None:
                with contextlib.suppress(psycopg2.Error):
                    self._db.close()
            self._db = None
            self._is_leader = False
        finally:
            if locked:
                self._db_lock.release()

    # -- leadership and state ----------------------------------------------------------

    def acquire_leadership(self) -> bool:
        """Try to become the publishing relay of this log."""
        if self._is_leader:
            return True
        with self._db_lock, self._database().cursor() as cur:
            key = zlib.crc32(f"relay:{self.schema}:{self.relay_name}".encode()) - 2**31
            cur.execute("SELECT pg_try_advisory_lock(%s)", (key,))
            self._is_leader = bool(cur.fetchone()[0])
            # another relay may have moved it while this one was not leader
            self._checkpoint = self._next_batch = None
            if self._is_leader:
                cur.execute(
                    f"INSERT INTO {self.schema}.outbox_checkpoints (relay) VALUES (%s) "
                    "ON CONFLICT DO NOTHING",
                    (self.relay_name,),
                )
                cur.execute(f"LISTEN {self.schema}_events")
        return self._is_leader

    @property
    def is_leader(self) -> bool:
        """Whether this relay holds its log's lock (is the one publishing)."""
        return self._is_leader

    def checkpoint(self) -> int:
        """The position this relay has published up to (0 before its first batch)."""
        with self._db_lock, self._database().cursor() as cur:
            cur.execute(
                f"SELECT position FROM {self.schema}.outbox_checkpoints WHERE relay = %s",
                (self.relay_name,),
            )
            row = cur.fetchone()
            return row[0] if row else 0

    def state(self) -> OutboxState:
        """Checkpoint, head and backlog; safe to call from another thread than run()'s."""
        with self._db_lock, self._database().cursor() as cur:
            return read_state(cur, self.schema, self.relay_name)

    # -- publishing --------------------------------------------------------------------

    def _publish(self, event: RecordedEvent) -> None:
        """Send one event (its confirm is awaited with the batch's, in ``_confirm``)."""
        publish_event(self._producer_for(), event, routing_key=event.event_type)
        self._sent += 1
        self._unconfirmed.add(self._sent)  # delivery tags count from 1 on a confirming channel

    def publish_batch(self) -> int:
        """Publish the next batch after the checkpoint; returns how many were published."""
        return self._publish_batch(trust_empty=False)

    def _publish_batch(self, trust_empty: bool) -> int:
        """While leader, the checkpoint's move after a batch goes in one round trip with the read
        of the next batch, which the next call publishes: a steady stream costs one round trip
        per batch, not a read, an update and a read that finds nothing. That read finding
        nothing is only taken as the end (``trust_empty``) by ``run``, which then waits for
        the notification of the next append; any other caller reads again."""
        with self._db_lock:
            batch, self._next_batch = self._next_batch, None
            usable = self._is_leader and batch is not None and (bool(batch) or trust_empty)
            if not usable:
                with self._database().cursor() as cur:
                    # while leader, only this relay moves the checkpoint: read it once per leadership
                    checkpoint = self._checkpoint if self._is_leader and self._checkpoint is not None \
                        else self.checkpoint()
                    batch = read_after(cur, self.schema, checkpoint, self.batch_size)
                if not batch:
                    self._checkpoint = checkpoint if self._is_leader else None
        if not batch:
            return 0
        for event in batch:
            self._publish(event)
        self._confirm()  # returns once the broker confirmed every message of the batch
        if self.after_publish is not None:
            self.after_publish(batch)
        position = batch[-1].position
        move = (Prepared(f"UPDATE {self.schema}.outbox_checkpoints SET position = %s, updated_at = now() "
                         "WHERE relay = %s AND position < %s"), (position, self.relay_name, position))
        with self._db_lock, self._database().cursor() as cur:
            if self._is_leader:  # nobody else moves the checkpoint: read on from it at once
                self._next_batch = read_after(cur, self.schema, position, self.batch_size, first=move)
            else:
                cur.execute(*move)
        self._checkpoint = position if self._is_leader else None
        self.published_total += len(batch)
        return len(batch)

    def drain(self) -> int:
        """Publish everything committed so far (used by tests and ops); returns the count."""
        total = 0
        while True:
            n = self.publish_batch()
            if n == 0:
                return total
            total += n

    def _wait_for_appends(self, timeout: float) -> None:
        """Wait until an append is notified, or ``timeout``. A notification that came with
        the answer of a query on this connection (the read that found the log's end, another
        thread's ``state()``) is already off the socket, in ``notifies``: it ends the wait at
        once, where waiting on the socket would sleep the whole timeout past it."""
        with self._db_lock:
            conn = self._database()
            if not conn.notifies:
                with contextlib.suppress(OSError, ValueError):
                    select.select([conn], [], [], timeout)
            conn.poll()
            conn.notifies.clear()

    def run(self, should_stop: Callable[[], bool]) -> None:
        """Relay until ``should_stop()``; survives broker and database outages."""
        backoff = 0.2
        while not should_stop():
            try:
                if not self.acquire_leadership():
                    time.sleep(self.idle_wait)
                    continue
                if self._publish_batch(trust_empty=True) == 0:
                    self._wait_for_appends(self.idle_wait)
                backoff = 0.2
            except Exception as exc:  # any failure: drop connections, retry from checkpoint
                log.warning("outbox relay %s: %s; retrying in %.1fs", self.schema, exc, backoff)
                self.close()
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        self.close()
