"""The two ways a delivery leaves the router: an agency's AMQP queue, or its signed callback.

Each ``send`` returns only once the other side has it (broker confirm, HTTP 2xx) and raises
``DeliveryFailed`` otherwise; the caller records the outcome.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import eventlet
from kombu import Connection, Exchange, Producer, Queue

from services.router.domain.routing import queue_name, routing_key
from services.router.domain.signing import signed_headers


class DeliveryFailed(Exception):
    """One attempt did not reach the agency (the message is safe to log: no secrets)."""


@dataclass(frozen=True)
class Outgoing:
    """One delivery to publish to an agency's queue."""

    agency_code: str
    event_type: str
    body: bytes
    delivery_id: str
    headers: dict[str, str] | None = None


class BrokerTimeout(Exception):
    """The broker did not answer in time (raised by the eventlet timer inside ``send``)."""


def agency_exchange(name: str) -> Exchange:
    return Exchange(name, type="topic", durable=True, auto_delete=False, delivery_mode=2)


def supports_quorum(server_properties: dict | None) -> bool:
    """Quorum queues exist from RabbitMQ 3.8; another broker or an older one gets a classic
    durable queue."""
    props = server_properties or {}
    product = props.get("product")
    product = product.decode() if isinstance(product, bytes) else str(product or "")
    version = props.get("version")
    version = version.decode() if isinstance(version, bytes) else str(version or "")
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return False
    return "rabbitmq" in product.lower() and (major, minor) >= (3, 8)


def agency_queue(exchange: Exchange, agency_code: str, quorum: bool = True) -> Queue:
    """The agency's durable queue (quorum where the broker has them), bound to every routing
    key of that agency."""
    return Queue(queue_name(agency_code), exchange=exchange,
                 routing_key=f"agency.{agency_code}.#", durable=True, auto_delete=False,
                 queue_arguments={"x-queue-type": "quorum" if quorum else "classic"})


class AmqpChannel:
    """Publishes to ``agency.deliveries`` with publisher confirms, declaring agency queues.

    ``send_many`` publishes several deliveries and waits for their confirms together (one
    wait per batch); ``send`` is a batch of one."""

    def __init__(self, amqp_uri: str, exchange_name: str = "agency.deliveries", timeout_s: float = 10.0):
        self.amqp_uri = amqp_uri
        # Every wait on the broker is bounded: a confirm that never comes (a broker killed or
        # restarting under us) must fail the attempt, not hold the channel's lock - and with it
        # every worker of the process - for ever.
        self.timeout_s = timeout_s
        self.exchange = agency_exchange(exchange_name)
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._producer: Producer | None = None
        self._declared: set[str] = set()
        self._tag = 0  # delivery tags count from 1 on a confirming channel
        self._unconfirmed: dict[int, int] = {}  # delivery tag -> index in the batch
        self._refused: set[int] = set()  # indexes the broker nacked
        self.quorum = True

    def _ready(self) -> Producer:
        if self._producer is None:
            self._conn = Connection(self.amqp_uri, connect_timeout=min(5.0, self.timeout_s), heartbeat=0,
                                    transport_options={"read_timeout": self.timeout_s,
                                                       "write_timeout": self.timeout_s})
            channel = self._conn.channel()
            self.quorum = supports_quorum(self._conn.connection.server_properties)
            channel.confirm_select()  # confirms are awaited per batch (send_many), not per message
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            self._tag, self._unconfirmed, self._refused = 0, {}, set()
            self.exchange(channel).declare()
            self._producer = Producer(channel, exchange=self.exchange)
            self._declared.clear()
        return self._producer

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            for tag in [t for t in self._unconfirmed if t <= delivery_tag]:
                del self._unconfirmed[tag]
        else:
            self._unconfirmed.pop(delivery_tag, None)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._refused.update(i for t, i in self._unconfirmed.items()
                             if t == delivery_tag or (multiple and t <= delivery_tag))
        self._on_ack(delivery_tag, multiple)

    def declare(self, agency_code: str) -> None:
        with self._lock:
            self._declare(agency_code)

    def _declare(self, agency_code: str) -> None:
        producer = self._ready()
        if agency_code not in self._declared:
            agency_queue(self.exchange, agency_code, self.quorum)(producer.channel).declare()
            self._declared.add(agency_code)

    def send(self, agency_code: str, event_type: str, body: bytes, delivery_id: str,
             headers: dict[str, str] | None = None) -> None:
        """Publish and wait for the broker's confirm; one fresh reconnect if the connection
        went stale while idle, then the failure is the caller's (it schedules a retry).
        ``headers`` become application properties beside ``delivery_id`` and ``agency_code``
        (the CloudEvents AMQP binding's ``cloudEvents:*`` and the JWS)."""
        [error] = self.send_many([Outgoing(agency_code, event_type, body, delivery_id, headers)])
        if error is not None:
            raise DeliveryFailed(error)

    def send_many(self, messages: list[Outgoing]) -> list[str | None]:
        """Publish every message, then wait for all their confirms at once; returns per message
        None (confirmed) or why it failed. A batch that fails as a whole (the connection, a
        confirm that does not come in time) is sent once more on a fresh connection, then each
        of its messages is reported failed (their copies may have got through: agencies drop a
        second copy by its ``delivery_id``)."""
        if not messages:
            return []
        with self._lock:
            for reconnect in (True, False):
                try:
                    # py-amqp's socket timeouts do not bind green sockets: bound the whole
                    # exchange (connect, declare, publish, confirms) with an eventlet timer
                    with eventlet.Timeout(self.timeout_s, BrokerTimeout(f"no answer within {self.timeout_s:g} s")):
                        return self._publish_all(messages)
                except Exception as exc:
                    self.close_locked(graceful=False)
                    if not reconnect:
                        return [f"amqp: {type(exc).__name__}: {exc}"[:300]] * len(messages)
        raise AssertionError("unreachable")

    def _publish_all(self, messages: list[Outgoing]) -> list[str | None]:
        producer = self._ready()
        self._unconfirmed, self._refused = {}, set()
        for index, m in enumerate(messages):
            self._declare(m.agency_code)
            producer.publish(
                m.body, routing_key=routing_key(m.agency_code, m.event_type),
                content_type="application/json", content_encoding="utf-8",
                delivery_mode=2, message_id=m.delivery_id, type=m.event_type,
                headers={**(m.headers or {}), "delivery_id": m.delivery_id, "agency_code": m.agency_code},
                retry=False, mandatory=False, timeout=self.timeout_s,
            )
            self._tag += 1
            self._unconfirmed[self._tag] = index
        while self._unconfirmed:
            self._conn.drain_events(timeout=self.timeout_s)  # type: ignore[union-attr]
        return ["amqp: the broker refused (nacked) the message" if i in self._refused else None
                for i in range(len(messages))]

    def close_locked(self, graceful: bool = True) -> None:
        """Drop the connection; after a failure without talking to the broker (a close
        handshake with a dead or stuck broker would wait for ever)."""
        if self._conn is not None:
            with contextlib.suppress(Exception), eventlet.Timeout(self.timeout_s, BrokerTimeout("close")):
                if graceful:
                    self._conn.release()
                else:
                    self._conn.collect()
        self._conn = self._producer = None

    def close(self) -> None:
        with self._lock:
            self.close_locked()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed attempt: urllib would replay a POST as a body-less GET and take
    the page it lands on for the agency's 2xx."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class HttpChannel:
    """POSTs the signed body to the agency's callback URL."""

    def __init__(self, timeout_s: float = 10.0):
        self.timeout_s = timeout_s
        self._opener = urllib.request.build_opener(_NoRedirects())

    def send(self, url: str, secret: str, body: bytes, delivery_id: str, previous: str | None = None,
             extra_headers: dict[str, str] | None = None) -> None:
        """POST ``body`` signed with ``secret`` (and ``previous`` during a rotation);
        ``extra_headers``: the CloudEvents HTTP binding's ``ce-*`` and the JWS."""
        if not url or not url.startswith(("http://", "https://")):
            raise DeliveryFailed("http: the route has no usable callback URL")
        headers = {**(extra_headers or {}), **signed_headers(secret, body, delivery_id, time.time(), previous)}
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with self._opener.open(request, timeout=self.timeout_s) as resp:
                if not 200 <= resp.status < 300:
                    raise DeliveryFailed(f"http: status {resp.status}")
        except urllib.error.HTTPError as exc:
            raise DeliveryFailed(f"http: status {exc.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryFailed(f"http: {type(exc).__name__}: {reason}"[:300]) from None
