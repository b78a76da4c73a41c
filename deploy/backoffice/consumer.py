"""The AMQP side: consume the agency's queue with pika and acknowledge after handling.

The queue (``agency.<code>``, a durable quorum queue bound to ``agency.<code>.#`` on the
``agency.deliveries`` topic exchange) is declared here too, with the router's arguments, so
the back office may start first. A message is acknowledged only after the inbox took it: a
crash before the ack leaves it in the queue for the next run; a handler error rejects it
back to the queue. ``on_taken`` (the gateway acknowledgement in ``__main__``) runs after a
new delivery was handled; its failure is logged, not retried through the queue.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pika

from deploy.backoffice.inbox import Inbox
from deploy.backoffice.jws import HEADER as JWS_HEADER
from deploy.backoffice.jws import DeliveryKeys, JwsError

log = logging.getLogger(__name__)


def declare(channel, agency_code: str, exchange: str = "agency.deliveries", quorum: bool = True) -> str:
    """Declare what the router declares: the arguments must match, or the broker refuses."""
    queue = f"agency.{agency_code}"
    channel.exchange_declare(exchange, exchange_type="topic", durable=True)
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum" if quorum else "classic"})
    channel.queue_bind(queue, exchange, routing_key=f"agency.{agency_code}.#")
    return queue


def supports_quorum(connection) -> bool:
    """Quorum queues exist from RabbitMQ 3.8 (the router makes the same choice)."""
    props = getattr(getattr(connection, "_impl", None), "server_properties", None) or {}
    product, version = (v.decode() if isinstance(v, bytes) else str(v or "")
                        for v in (props.get("product"), props.get("version")))
    try:
        return "rabbitmq" in product.lower() and tuple(int(p) for p in version.split(".")[:2]) >= (3, 8)
    except ValueError:
        return False


class AgencyConsumer:
    def __init__(self, amqp_uri: str, agency_code: str, inbox: Inbox,
                 exchange: str = "agency.deliveries", prefetch: int = 50,
                 on_taken: Callable[[dict], Any] | None = None, keys: DeliveryKeys | None = None):
        self.keys = keys  # with keys, a message's Portal-Signature-JWS must verify
        self.rejected = 0
        self.on_taken = on_taken
        self.stopping = False  # set by another thread to end ``run`` / ``run_forever``
        self.amqp_uri = amqp_uri
        self.agency_code = agency_code
        self.inbox = inbox
        self.exchange = exchange
        self.prefetch = prefetch
        self.acked = 0

    def _on_message(self, channel, method, properties, body: bytes) -> None:
        try:
            if self.keys is not None:
                self.keys.verify((properties.headers or {}).get(JWS_HEADER), body)
            delivery = json.loads(body)
            if not isinstance(delivery, dict) or delivery.get("agency_code") != self.agency_code:
                raise ValueError("not a delivery for this agency")
        except JwsError as exc:
            self.rejected += 1
            log.warning("back office %s: dropping a message whose signature fails: %s", self.agency_code, exc)
            channel.basic_reject(method.delivery_tag, requeue=False)
            return
        except ValueError as exc:
            log.warning("back office %s: dropping a malformed message: %s", self.agency_code, exc)
            channel.basic_reject(method.delivery_tag, requeue=False)
            return
        try:
            new = self.inbox.take(delivery)
        except Exception:
            log.exception("back office %s: handling %s failed", self.agency_code, delivery.get("delivery_id"))
            channel.basic_nack(method.delivery_tag, requeue=True)
            return
        if new and self.on_taken is not None:
            try:
                self.on_taken(delivery)
            except Exception as exc:  # the dossier is handled; the router just shows it as sent
                log.warning("back office %s: could not confirm %s: %s", self.agency_code,
                            delivery.get("delivery_id"), exc)
        channel.basic_ack(method.delivery_tag)
        self.acked += 1

    def run(self, until: float | None = None, max_messages: int | None = None) -> None:
        """Consume until ``until`` (a monotonic time), ``max_messages`` acks, or forever."""
        params = pika.URLParameters(self.amqp_uri)
        connection = pika.BlockingConnection(params)
        try:
            channel = connection.channel()
            queue = declare(channel, self.agency_code, self.exchange, supports_quorum(connection))
            channel.basic_qos(prefetch_count=self.prefetch)
            for method, properties, body in channel.consume(queue, inactivity_timeout=0.2):
                if method is not None:
                    self._on_message(channel, method, properties, body)
                if max_messages is not None and self.acked >= max_messages:
                    break
                if self.stopping or (until is not None and time.monotonic() >= until):
                    break
            channel.cancel()
        finally:
            if connection.is_open:
                connection.close()

    def run_forever(self, until: float | None = None, max_backoff_s: float = 30.0) -> None:
        """``run``, connecting again (with back-off) whenever the broker goes away: messages
        not acknowledged yet are back in the queue and come again (the inbox drops copies)."""
        backoff = 0.5
        while not self.stopping and (until is None or time.monotonic() < until):
            started = time.monotonic()
            try:
                self.run(until=until)
                return
            except (pika.exceptions.AMQPError, OSError) as exc:
                if time.monotonic() - started > 60:
                    backoff = 0.5  # it had been working: start the back-off over
                log.warning("back office %s: broker connection lost (%s); again in %.1f s",
                            self.agency_code, type(exc).__name__, backoff)
                time.sleep(backoff)
                backoff = min(max_backoff_s, backoff * 2)
