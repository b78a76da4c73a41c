"""The dossier service's application layer: its use cases, one module per group.

- ``dossiers``: ``Dossiers``, the use cases on the log (load, authorize, decide, evolve,
  project, append; file with idempotency and the daily code; the overdue job; queries);
- ``filing``: the ``submit`` RPC (validation, catalog checks, the filing's hash);
- ``actions``: the other RPCs on a filed dossier (agency actions, supplement, withdrawal,
  uploads, reads, lists);
- ``drafts``: ``Drafts`` and the draft RPCs; ``access``: the access log of staff reads;
- ``views``: what the RPCs answer.

Transactions begin and end here. ``on_postgres`` and ``in_memory`` put the use cases together
with either implementation of the ports (the event log, ``repository.Repository``,
``queries.ReadModels``).
"""

from __future__ import annotations

from portal_common.db import Database
from portal_common.eventstore import EventLog, EventStore, MemoryEventStore
from services.dossier.application.dossiers import Dossiers
from services.dossier.application.drafts import Drafts
from services.dossier.memory import MemoryStore
from services.dossier.queries import PgReadModels
from services.dossier.repository import PgRepository


def on_postgres(db: Database, log: EventLog | None = None) -> Dossiers:
    """The use cases over the service's PostgreSQL schema (``log``: its ``EventStore``)."""
    return Dossiers(log or EventStore(db), PgRepository(db), PgReadModels(db))


def in_memory() -> Dossiers:
    """The use cases over an in-process log and store (no database)."""
    log = MemoryEventStore()
    store = MemoryStore(log)
    return Dossiers(log, store, store)


__all__ = ["Dossiers", "Drafts", "in_memory", "on_postgres"]
