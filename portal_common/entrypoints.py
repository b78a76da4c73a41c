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

An event handler that raises does not lose its message: it is tried again later with
back-off, then parked for operators (``redelivery.py``). An RPC whose database connection
broke before its transaction committed runs once more on a fresh connection
(``DatabaseUnavailable.retry_safe``); a second failure reaches the caller as that typed error
(a 503 at the gateway), never as a bare ``OperationalError``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import kombu.serialization
from amqp.exceptions import ConnectionError as AmqpConnectionError
from kombu.exceptions import OperationalError
from nameko.amqp.publish import Publisher
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    DEFAULT_SERIALIZER,
    LOGIN_METHOD_CONFIG_KEY,
    NON_PERSISTENT,
    SERIALIZER_CONFIG_KEY,
)
from nameko.events import EventHandler
from nameko.exceptions import ContainerBeingKilled, UnserializableValueError, serialize
from nameko.messaging import QueueConsumer
from nameko.rpc import ReplyListener, Responder, Rpc, RpcConsumer, RpcProxy, ServiceProxy, get_rpc_exchange
from nameko.standalone.rpc import ClusterProxy, ClusterRpcProxy, ServiceRpcProxy

from portal_common import config, jsoncodec, publishing
from portal_common.db import DatabaseUnavailable
from portal_common.redelivery import Redeliverer, RetryPolicy, parking_queue_name

log = logging.getLogger(__name__)

#: what a publish or an ack raises when the broker connection is gone
BROKER_GONE = (OSError, AmqpConnectionError, OperationalError)

#: RPC requests and replies are transient messages (nameko makes every message persistent).
#: A caller waits for its reply only up to its time-out, so a request kept on disk through a
#: broker restart would run after its caller had given up (a filing without a key, filed once
#: more by the client's retry); a lost one is answered 503 and retried, with the filing's key.
#: Kept in memory, neither the request nor the reply is written to the broker's disk, and the
#: broker confirms a request as soon as it is queued. Events, which must outlive a restart,
#: stay persistent (``outbox.publish_event``, the router's deliveries, ``redelivery``).
RPC_DELIVERY_MODE = NON_PERSISTENT


def transient_rpc(options: dict) -> dict:
    """An RPC proxy's publisher options, its requests transient unless ``options`` say."""
    return {"delivery_mode": RPC_DELIVERY_MODE, **options}


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


    def redeliverer(self) -> Redeliverer:
        """The publisher of retry and parking copies, shared by the container's handlers."""
        found = self.__dict__.get("_redeliverer")
        if found is None:
            service = self.container.service_name
            amqp_uri = self.container.config.get("AMQP_URI") or config.amqp_uri(service)
            found = self.__dict__["_redeliverer"] = Redeliverer(amqp_uri, RetryPolicy.from_env(service))
        return found

    def stop(self) -> None:
        super().stop()
        found = self.__dict__.pop("_redeliverer", None)
        if found is not None:
            found.close()


class ReconnectingEventHandler(EventHandler):
    """An event handler that never acknowledges a message it failed to handle: the message
    is retried with back-off, then parked (``portal_common.redelivery``)."""

    queue_consumer = ReconnectingQueueConsumer()

    def setup(self) -> None:
        jsoncodec.install()
        super().setup()

    @property
    def parking_queue(self) -> str:
        return parking_queue_name(self.container.service_name)

    def handle_message_processed(self, message, result=None, exc_info=None) -> None:
        if exc_info is None:
            self.queue_consumer.ack_message(message)
            return
        try:
            self.queue_consumer.redeliverer().dispose(message, self.queue.name, self.parking_queue, exc_info)
        except Exception as exc:  # not copied: leave it to the broker, never acknowledge it
            log.warning("could not set a failed message of %s aside (%s); putting it back", self.queue.name, exc)
            self.queue_consumer.requeue_message(message)
            return
        self.queue_consumer.ack_message(message)


class UnconfirmedPublisher(Publisher):
    """A publisher that does not wait for the broker's confirm, of transient messages: for RPC
    replies only.

    A caller waits for its reply only up to its time-out, and one that gets none answers
    503 (the client retries, with its key where the call writes). A reply lost with the
    broker is then no worse than one that came late, so the confirm bought nothing, and
    cost every RPC a wait and a frame each way. What the call wrote is in its service's
    database and log either way."""

    use_confirms = False
    delivery_mode = RPC_DELIVERY_MODE


class UnconfirmedResponder(Responder):
    """nameko's ``Responder`` on the unconfirmed publisher, encoding each reply once.

    nameko encodes the result on its own to learn whether it can be sent, then the whole
    reply again to send it; here the reply is encoded once and sent as it is. A result that
    cannot be encoded is answered, as by nameko, with ``UnserializableValueError``."""

    publisher_cls = UnconfirmedPublisher

    def send_response(self, result, exc_info):
        error = serialize(exc_info[1]) if exc_info is not None else None
        serializer = kombu.serialization.registry.type_to_name[self.message.properties["content_type"]]
        try:
            content_type, encoding, body = kombu.serialization.dumps({"result": result, "error": error}, serializer)
        except Exception:
            exc_info = sys.exc_info()
            result, error = None, serialize(UnserializableValueError(result))
            content_type, encoding, body = kombu.serialization.dumps({"result": None, "error": error}, serializer)
        self.publisher_cls(self.amqp_uri, ssl=self.ssl, login_method=self.login_method).publish(
            body, content_type=content_type, content_encoding=encoding, exchange=self.exchange,
            routing_key=self.message.properties["reply_to"],
            correlation_id=self.message.properties.get("correlation_id"))
        return result, exc_info


class ReconnectingRpcConsumer(RpcConsumer):
    """nameko's RPC consumer on the reconnecting queue consumer; a reply that cannot be
    published because the broker is away leaves the request unacknowledged (it comes again).
    Replies are sent without waiting for a confirm (``UnconfirmedPublisher``)."""

    queue_consumer = ReconnectingQueueConsumer()

    def setup(self) -> None:
        publishing.install()
        jsoncodec.install()
        super().setup()

    def _reply(self, message, result, exc_info):
        """nameko's ``RpcConsumer.handle_result`` with the unconfirmed responder."""
        conf = self.container.config
        responder = UnconfirmedResponder(conf[AMQP_URI_CONFIG_KEY], get_rpc_exchange(conf),
                                         conf.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER), message,
                                         ssl=conf.get(AMQP_SSL_CONFIG_KEY),
                                         login_method=conf.get(LOGIN_METHOD_CONFIG_KEY))
        result, exc_info = responder.send_response(result, exc_info)
        self.queue_consumer.ack_message(message)
        return result, exc_info

    def handle_result(self, message, result, exc_info):
        try:
            return self._reply(message, result, exc_info)
        except BROKER_GONE as exc:
            log.warning("RPC reply lost with the broker connection (%s); the request comes again", exc)
            return result, exc_info


class ReconnectingRpc(Rpc):
    """An RPC that runs once more when its database connection broke before it committed."""

    rpc_consumer = ReconnectingRpcConsumer()

    def handle_result(self, message, worker_ctx, result, exc_info, retried: bool = False):
        error = exc_info[1] if exc_info else None
        if not retried and isinstance(error, DatabaseUnavailable) and error.retry_safe:
            log.warning("%s: database connection lost before commit; running it once more", self.method_name)
            try:
                self.container.spawn_worker(self, worker_ctx.args, worker_ctx.kwargs,
                                            context_data=worker_ctx.context_data,
                                            handle_result=partial(self.handle_result, message, retried=True))
                return result, exc_info
            except ContainerBeingKilled:
                self.rpc_consumer.requeue_message(message)
                return result, exc_info
        return super().handle_result(message, worker_ctx, result, exc_info)


class ReconnectingReplyListener(ReplyListener):
    queue_consumer = ReconnectingQueueConsumer()


class ReconnectingRpcProxy(RpcProxy):
    rpc_reply_listener = ReconnectingReplyListener()

    def __init__(self, target_service: str, **options: Any):
        super().__init__(target_service, **transient_rpc(options))

    def setup(self) -> None:
        publishing.install()
        jsoncodec.install()
        super().setup()


event_handler = ReconnectingEventHandler.decorator
rpc = ReconnectingRpc.decorator


class _TransientClusterProxy(ClusterProxy):
    def __getattr__(self, name: str) -> ServiceProxy:
        if name not in self._proxies:
            self._proxies[name] = ServiceProxy(self._worker_ctx, name, self._reply_listener,
                                               **transient_rpc({}))
        return self._proxies[name]


class TransientClusterRpcProxy(ClusterRpcProxy):
    """nameko's standalone cluster client, its requests transient (``RPC_DELIVERY_MODE``):
    for processes outside a container (ops commands, a gateway's key fetch, kept clients)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._proxy = _TransientClusterProxy(self._worker_ctx, self._reply_listener)


class TransientServiceRpcProxy(ServiceRpcProxy):
    """nameko's standalone client of one service, its requests transient."""

    def __init__(self, service_name: str, *args: Any, **kwargs: Any):
        super().__init__(service_name, *args, **kwargs)
        self._proxy = ServiceProxy(self._worker_ctx, service_name, self._reply_listener, **transient_rpc({}))
