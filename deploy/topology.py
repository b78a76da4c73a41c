"""The services' event queues, declared on the broker before any service publishes.

An exchange drops a message that no queue is bound for, and each service declares its event
queues only when it starts, one by one. At a fresh deployment the catalog publishes its seed
as soon as it starts, so a consumer that starts later (or binds that event's queue later)
would never hear of it. ``declare_event_queues`` declares every pooled event handler's queue
and binding exactly as the handler itself will (nameko's own ``setup`` names and shapes
them), so whatever is published from then on waits in its queue. ``make up``, the tests'
and benchmarks' systems (``LocalSystem.start``) and the migration job (``python -m
deploy.local migrate``) call it before any service runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from kombu import Connection
from nameko.containers import ServiceContainer
from nameko.events import SERVICE_POOL, EventHandler


def _service_class(path: str) -> type:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def event_handlers(amqp_uri: str, service_paths: Iterable[str]) -> list[EventHandler]:
    """The pooled, reliable event handlers of the services (``module:Class``), set up as in a
    running container (their ``queue`` built) but connected to nothing."""
    handlers = []
    for path in service_paths:
        container = ServiceContainer(_service_class(path), {"AMQP_URI": amqp_uri})
        for entrypoint in container.entrypoints:
            if isinstance(entrypoint, EventHandler) and entrypoint.handler_type == SERVICE_POOL \
                    and entrypoint.reliable_delivery:
                entrypoint.setup()
                handlers.append(entrypoint)
    return handlers


def declare_event_queues(amqp_uri: str, service_paths: Iterable[str]) -> list[str]:
    """Declare each handler's exchange, durable queue and binding; the queue names."""
    handlers = event_handlers(amqp_uri, service_paths)
    with Connection(amqp_uri, connect_timeout=10) as conn:
        conn.connect()  # one attempt: a broker that is not there raises (OSError) at once
        channel = conn.channel()
        for handler in handlers:
            handler.queue.bind(channel).declare()
    return sorted(h.queue.name for h in handlers)
