"""nameko dependency providers shared by the services.

``Storage`` gives a worker the service's ``Database`` pool; ``EventLog`` gives it the
service's ``EventStore``; ``Outbox`` runs the outbox relay in a background greenthread
for as long as the service container runs.
"""

from __future__ import annotations

import logging
import threading

from nameko.extensions import DependencyProvider

from portal_common import config
from portal_common.db import Database, make_green
from portal_common.eventstore import EventStore
from portal_common.outbox import OutboxRelay

log = logging.getLogger(__name__)


def _dsn(container, service: str) -> str:
    return config.env("DATABASE_URL", None, service) or container.config.get(
        "DATABASE_URL"
    ) or config.database_url(service)


class Storage(DependencyProvider):
    """The service's connection pool (search_path = its own schema)."""

    def __init__(self, schema: str | None = None, size: int | None = None):
        self.schema = schema
        self.size = size
        self.db: Database | None = None

    def setup(self) -> None:
        make_green()
        schema = self.schema or self.container.service_name
        size = self.size or config.env_int("DB_POOL_SIZE", 10, schema)
        self.db = Database(_dsn(self.container, schema), schema, size=size,
                           application_name=self.container.service_name, name=getattr(self, "attr_name", None))

    def start(self) -> None:
        """Open the pool's floor of connections beside the container's start, so that a
        restarted or added process does not start backends in its first requests' time."""
        self.container.spawn_managed_thread(self._open_floor, identifier=f"{self.db.schema}-pool-floor")

    def _open_floor(self) -> None:
        try:
            self.db.open_floor()
        except Exception:  # never the container's end: the requests open what they need
            log.warning("could not open the %s pool's connections ahead", self.db.schema, exc_info=True)

    def stop(self) -> None:
        if self.db is not None:
            self.db.close()

    def get_dependency(self, worker_ctx) -> Database:
        return self.db


class EventLog(Storage):
    """The service's event store."""

    def setup(self) -> None:
        super().setup()
        self.store = EventStore(self.db)

    def get_dependency(self, worker_ctx) -> EventStore:
        return self.store


class Outbox(DependencyProvider):
    """Runs the outbox relay of the service's log while the container runs."""

    def __init__(self, schema: str | None = None):
        self.schema = schema
        self.relay: OutboxRelay | None = None
        self._stopping = threading.Event()

    def setup(self) -> None:
        make_green()
        schema = self.schema or self.container.service_name
        amqp_uri = self.container.config.get("AMQP_URI") or config.amqp_uri(schema)
        self.relay = OutboxRelay(
            _dsn(self.container, schema), schema, amqp_uri,
            exchange_service=self.container.service_name,
            batch_size=config.env_int("OUTBOX_BATCH_SIZE", 500, schema),
            idle_wait=config.env_float("OUTBOX_IDLE_WAIT", 1.0, schema),
        )

    def start(self) -> None:
        self._stopping.clear()
        self._thread = self.container.spawn_managed_thread(
            lambda: self.relay.run(self._stopping.is_set), identifier="outbox-relay"
        )

    def stop(self) -> None:
        self._stopping.set()
        if getattr(self, "_thread", None) is not None:
            self._thread.wait()

    def kill(self) -> None:
        self._stopping.set()
        if self.relay is not None:
            self.relay.close()

    def get_dependency(self, worker_ctx) -> OutboxRelay:
        return self.relay
