"""nameko's AMQP entrypoints, made to survive a broker restart.

nameko 2.14 acknowledges a handled message on the connection it came from and only expects
``amqp.exceptions.ConnectionError`` there; when the broker went away mid-handling the socket
raises ``ConnectionResetError`` (an ``OSError``) instead, the worker thread dies and takes
the whole container with it. The broker has already put the unacknowledged message back in
its queue, so the right move is to let the ack go: the consumer reconnects and the message
comes again (an event handler recognises it with ``handle_once``; an RPC runs again).

An RPC also publishes its reply before it acknowledges the request; if that publish fails
because the broker is away, the request is left unacknowledged (the broker hands it out
again once it is back) instead of letting the error kill the container.

nameko shares an extension per class within a container, so every entrypoint here (event
handlers, RPCs and the reply listener of ``RpcProxy``) uses the one
``ReconnectingQueueConsumer`` class: a service has a single consumer connection, as with
nameko's own entrypoints. Use these in place of ``nameko.events.event_handler``,
``nameko.rpc.rpc`` and ``nameko.rpc.RpcProxy``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from amqp.exceptions import ConnectionError as AmqpConnectionError
from kombu.exceptions import OperationalError
from nameko.events import EventHandler
from nameko.messaging import QueueConsumer
from nameko.rpc import ReplyListener, Rpc, RpcConsumer, RpcProxy

log = logging.getLogger(__name__)

#: what a publish or an ack raises when the broker connection is gone
BROKER_GONE = (OSError, AmqpConnectionError, OperationalError)


class ReconnectingQueueConsumer(QueueConsumer):
    """A queue consumer whose ack / requeue on a dead connection is a no-op, not a crash.

    Broadcast handlers (``reliable_delivery=False``) lose the events published while their
    connection was down: their queue went with it. Whatever a process keeps from such events
    (a cache) registers ``add_reconnect_listener`` to drop it when the consumer reconnects.
    """

    def add_reconnect_listener(self, callback: Callable[[], None]) -> None:
        """Run ``callback()`` after every reconnection to the broker (not the first connect)."""
        self.__dict__.setdefault("_reconnect_listeners", []).append(callback)

    def on_consume_ready(self, connection, channel, consumers, **kwargs) -> None:
        reconnected = self._consumers_ready.ready()
        super().on_consume_ready(connection, channel, consumers, **kwargs)
        if not reconnected:
            return
        log.warning("consumer reconnected to the broker; broadcast events sent meanwhile were missed")
        for callback in list(self.__dict__.get("_reconnect_listeners", ())):
            try:
                callback()
            except Exception:  # one listener's failure must not stop the consumer
                log.exception("reconnect listener %r failed", callback)

    def ack_message(self, message) -> None:
        try:
            super().ack_message(message)
        except OSError as exc:
            log.warning("ack lost with the broker connection (%s); the message comes again", exc)

    def requeue_message(self, message) -> None:
        try:
            super().requeue_message(message)
        except OSError as exc:
            log.warning("requeue lost with the broker connection (%s)", exc)


class ReconnectingEventHandler(EventHandler):
    queue_consumer = ReconnectingQueueConsumer()


class ReconnectingRpcConsumer(RpcConsumer):
    """nameko's RPC consumer on the reconnecting queue consumer; a reply that cannot be
    published because the broker is away leaves the request unacknowledged (it comes again)."""

    queue_consumer = ReconnectingQueueConsumer()

    def handle_result(self, message, result, exc_info):
        try:
            return super().handle_result(message, result, exc_info)
        except BROKER_GONE as exc:
            log.warning("RPC reply lost with the broker connection (%s); the request comes again", exc)
            return result, exc_info


class ReconnectingRpc(Rpc):
    rpc_consumer = ReconnectingRpcConsumer()


class ReconnectingReplyListener(ReplyListener):
    queue_consumer = ReconnectingQueueConsumer()


class ReconnectingRpcProxy(RpcProxy):
    rpc_reply_listener = ReconnectingReplyListener()


event_handler = ReconnectingEventHandler.decorator
rpc = ReconnectingRpc.decorator
