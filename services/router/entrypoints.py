"""nameko's event handler, made to survive a broker restart.

nameko 2.14 acknowledges a handled message on the connection it came from and only expects
``amqp.exceptions.ConnectionError`` there; when the broker went away mid-handling the socket
raises ``ConnectionResetError`` (an ``OSError``) instead, the worker thread dies and takes
the whole container with it. The broker has already put the unacknowledged message back in
its queue, so the right move is to let the ack go: the consumer reconnects, the message
comes again and ``handle_once`` recognises it.
"""

from __future__ import annotations

import logging

from nameko.events import EventHandler
from nameko.messaging import QueueConsumer

log = logging.getLogger(__name__)


class ReconnectingQueueConsumer(QueueConsumer):
    """A queue consumer whose ack / requeue on a dead connection is a no-op, not a crash."""

    def ack_message(self, message) -> None:
        try:
            super().ack_message(message)
        except OSError as exc:
            log.warning("router: ack lost with the broker connection (%s); the message comes again", exc)

    def requeue_message(self, message) -> None:
        try:
            super().requeue_message(message)
        except OSError as exc:
            log.warning("router: requeue lost with the broker connection (%s)", exc)


class ReconnectingEventHandler(EventHandler):
    queue_consumer = ReconnectingQueueConsumer()


event_handler = ReconnectingEventHandler.decorator
