"""What an event handler does with a message it failed to handle: try again later, then park it.

nameko acknowledges a message whose handler raised (unless ``requeue_on_error``, which puts it
straight back at the head of the queue and spins while the database is away). Neither is
acceptable for events: an acknowledged failure is an event lost, a hot requeue is a busy
loop. Here a failed message is

1. **retried with back-off**: a copy goes to a delay queue of its own
   (``<queue>.retry.<ms>ms``, a durable queue whose messages expire after that delay and are
   dead-lettered back to ``<queue>`` through the default exchange), with the attempt count in
   the ``x-portal-attempts`` header; only once the broker has confirmed the copy is the
   original acknowledged;
2. **parked** after ``CONSUMER_MAX_ATTEMPTS`` tries, or at once when the failure says the
   message itself is bad (``PERMANENT_ERRORS``): a copy goes to ``<service>.parked``, one
   durable queue per service that nobody consumes, with the queue it came from and why it
   failed. Operators see the parked count in ``portal_parked_messages`` and
   ``portal-ops parked``, and move messages back to their queues with ``portal-ops unpark``.

If the copy cannot be published (the broker is going away) the original is not acknowledged:
the broker hands it out again. Handlers are idempotent (``handle_once``), so a copy that
arrives twice does no harm; nothing is ever acknowledged without being handled or copied.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kombu import Connection, Exchange, Producer, Queue
from marshmallow import ValidationError
from prometheus_client import Counter

from portal_common import config
from portal_common.errors import InvalidInput

log = logging.getLogger(__name__)

ATTEMPTS_HEADER = "x-portal-attempts"
ORIGIN_HEADER = "x-portal-origin-queue"
ERROR_HEADER = "x-portal-error"
PARKED_AT_HEADER = "x-portal-parked-at"
PARKED_SUFFIX = ".parked"

#: failures that no retry can fix: the message itself is malformed
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (InvalidInput, ValidationError)

RETRIED = Counter("portal_consumer_retries_total", "Failed event messages scheduled for another try",
                  ["queue"])
PARKED = Counter("portal_consumer_parked_total", "Event messages parked after their last try", ["queue"])


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how late a failed message is tried again."""

    delays_s: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0, 300.0)
    max_attempts: int = 8

    @classmethod
    def from_env(cls, service: str | None = None) -> RetryPolicy:
        raw = config.env("CONSUMER_RETRY_DELAYS", None, service)
        delays = tuple(float(x) for x in raw.split(",") if x.strip()) if raw else cls.delays_s
        return cls(delays or cls.delays_s, max(1, config.env_int("CONSUMER_MAX_ATTEMPTS", cls.max_attempts, service)))

    def delay_after(self, attempt: int) -> float:
        """The pause after failed try number ``attempt`` (1-based); the last delay repeats."""
        return self.delays_s[min(attempt, len(self.delays_s)) - 1]

    def exhausted(self, attempt: int) -> bool:
        return attempt >= self.max_attempts


def attempts_of(headers: dict | None) -> int:
    """How many tries a message has had already (0 for a fresh one)."""
    try:
        return max(0, int((headers or {}).get(ATTEMPTS_HEADER, 0)))
    except (TypeError, ValueError):
        return 0


def parking_queue_name(service: str) -> str:
    """The one parking queue of a service: every handler's parked messages, whatever its
    queue (a broadcast queue's instance may be gone by the time an operator looks)."""
    return service + PARKED_SUFFIX


def retry_queue(queue_name: str, delay_s: float) -> Queue:
    """The delay queue that hands messages back to ``queue_name`` after ``delay_s``."""
    ms = max(1, int(delay_s * 1000))
    return Queue(f"{queue_name}.retry.{ms}ms", exchange=Exchange(""), routing_key=f"{queue_name}.retry.{ms}ms",
                 durable=True, auto_delete=False,
                 queue_arguments={"x-message-ttl": ms, "x-dead-letter-exchange": "",
                                  "x-dead-letter-routing-key": queue_name,
                                  # unused for an hour past its delay (every copy long gone): removed
                                  "x-expires": ms + 3_600_000})


def parking_queue(name: str) -> Queue:
    return Queue(name, exchange=Exchange(""), routing_key=name, durable=True, auto_delete=False)


def describe_error(exc_info: Any) -> str:
    exc = exc_info[1] if exc_info else None
    if exc is None:
        return "unknown error"
    return f"{type(exc).__name__}: {str(exc)[:300]}"


class Redeliverer:
    """Publishes copies of failed messages to delay and parking queues, with confirms.

    One per consumer connection (a service has one); its own producer connection is opened
    on first use and opened again after a failure."""

    def __init__(self, amqp_uri: str, policy: RetryPolicy, timeout_s: float = 10.0):
        self.amqp_uri = amqp_uri
        self.policy = policy
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._producer: Producer | None = None
        self._declared: set[str] = set()

    def _ready(self) -> Producer:
        if self._producer is None:
            self._conn = Connection(self.amqp_uri, connect_timeout=min(5.0, self.timeout_s), heartbeat=0,
                                    transport_options={"confirm_publish": True})
            self._producer = Producer(self._conn.channel())
            self._declared = set()
        return self._producer

    def _reset(self) -> None:
        conn, self._conn, self._producer = self._conn, None, None
        if conn is not None:
            try:
                conn.release()
            except Exception:  # already broken: nothing to release
                log.debug("redeliverer: closing a broken connection failed", exc_info=True)

    def _publish(self, queue: Queue, message: Any, headers: dict) -> None:
        with self._lock:
            try:
                producer = self._ready()
                if queue.name not in self._declared:
                    queue(producer.channel).declare()
                    self._declared.add(queue.name)
                producer.publish(message.body, exchange="", routing_key=queue.name,
                                 content_type=message.content_type, content_encoding=message.content_encoding,
                                 headers=headers, delivery_mode=2, retry=False, timeout=self.timeout_s)
            except BaseException:
                self._reset()
                raise

    def dispose(self, message: Any, queue_name: str, parking_name: str, exc_info: Any) -> str:
        """Send a failed ``message`` on its way; returns ``"retry"`` or ``"parked"``.

        Raises when the copy could not be published: the caller must then not acknowledge."""
        headers = dict(message.headers or {})
        attempt = attempts_of(headers) + 1
        headers[ATTEMPTS_HEADER] = attempt
        headers[ORIGIN_HEADER] = queue_name
        headers[ERROR_HEADER] = describe_error(exc_info)
        error = exc_info[1] if exc_info else None
        if isinstance(error, PERMANENT_ERRORS) or self.policy.exhausted(attempt):
            headers[PARKED_AT_HEADER] = dt.datetime.now(dt.UTC).isoformat()
            self._publish(parking_queue(parking_name), message, headers)
            PARKED.labels(queue_name).inc()
            log.error("parked a message of %s after %d tries: %s", queue_name, attempt, headers[ERROR_HEADER])
            return "parked"
        delay = self.policy.delay_after(attempt)
        self._publish(retry_queue(queue_name, delay), message, headers)
        RETRIED.labels(queue_name).inc()
        log.warning("a message of %s failed (try %d, again in %.1f s): %s", queue_name, attempt, delay,
                    headers[ERROR_HEADER])
        return "retry"

    def close(self) -> None:
        with self._lock:
            self._reset()


# -- operators: list and move parked messages ------------------------------------------------


@dataclass
class ParkedMessage:
    queue: str
    origin: str
    attempts: int
    error: str
    parked_at: str
    body: str


def parked_counts(amqp_uri: str, names: list[str]) -> dict[str, int]:
    """Messages waiting in each parking queue that exists."""
    out = {}
    with Connection(amqp_uri, connect_timeout=3) as conn:
        for name in names:
            channel = conn.channel()
            try:
                _, waiting, _ = channel.queue_declare(queue=name, passive=True)
                out[name] = int(waiting)
            except Exception:  # no such queue: nothing was ever parked there
                log.debug("parking queue %s not found", name)
            finally:
                try:
                    channel.close()
                except Exception:  # the passive declare closed it already
                    log.debug("closing channel failed", exc_info=True)
    return out


def _each(amqp_uri: str, name: str, limit: int) -> Iterator[tuple[Any, Any]]:
    """Each message of queue ``name``, unacknowledged (none when the queue does not exist)."""
    with Connection(amqp_uri, connect_timeout=3) as conn:
        if not _queue_exists(conn, name):
            return
        channel = conn.channel()
        for _ in range(limit):
            message = channel.basic_get(queue=name, no_ack=False)
            if message is None:
                return
            yield channel, message


def _text(body: Any) -> str:
    return body if isinstance(body, str) else bytes(body).decode("utf-8", "replace")


def list_parked(amqp_uri: str, name: str, limit: int = 100) -> list[ParkedMessage]:
    """Look at up to ``limit`` parked messages without taking them (they stay parked)."""
    out = []
    for _channel, message in _each(amqp_uri, name, limit):
        headers = message.headers or {}
        out.append(ParkedMessage(name, str(headers.get(ORIGIN_HEADER, "")), attempts_of(headers),
                                 str(headers.get(ERROR_HEADER, "")), str(headers.get(PARKED_AT_HEADER, "")),
                                 _text(message.body)[:2000]))
    # the channel closes without acknowledging: every message goes back to its queue
    return out


def _queue_exists(conn: Connection, name: str) -> bool:
    channel = conn.channel()
    try:
        channel.queue_declare(queue=name, passive=True)
        return True
    except Exception:  # the broker closed the channel: no such queue
        return False
    finally:
        try:
            channel.close()
        except Exception:  # already closed by the failed declare
            log.debug("closing channel failed", exc_info=True)


def unpark(amqp_uri: str, name: str, limit: int = 1000) -> int:
    """Move up to ``limit`` parked messages back to the queues they came from, attempts reset.

    Each copy is confirmed by the broker before its parked original is acknowledged. Only the
    messages parked when the call starts are moved: one that fails again and is parked anew
    meanwhile waits for the next call."""
    limit = min(limit, parked_counts(amqp_uri, [name]).get(name, 0))
    moved = 0
    with Connection(amqp_uri, connect_timeout=3, transport_options={"confirm_publish": True}) as out:
        producer = Producer(out.channel())
        for channel, message in _each(amqp_uri, name, limit):
            headers = dict(message.headers or {})
            origin = str(headers.get(ORIGIN_HEADER) or "")
            if not origin or not _queue_exists(out, origin):
                continue  # its consumer is gone: left unacknowledged, it stays parked
            for key in (ATTEMPTS_HEADER, ERROR_HEADER, PARKED_AT_HEADER):
                headers.pop(key, None)
            producer.publish(message.body, exchange="", routing_key=origin, content_type=message.content_type,
                             content_encoding=message.content_encoding, headers=headers, delivery_mode=2,
                             mandatory=True, retry=False)
            channel.basic_ack(message.delivery_tag)
            moved += 1
    return moved
