"""Value objects for events going into and coming out of the log."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Actor:
    """Who caused an event."""

    kind: str
    id: str
    agency_code: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "agency_code": self.agency_code}


SYSTEM = Actor("system", "system")


@dataclass(frozen=True)
class NewEvent:
    """An event a command decided on, not yet recorded."""

    event_type: str
    data: dict[str, Any]
    schema_version: int | None = None
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    occurred_at: dt.datetime = field(default_factory=utcnow)
    # What consumers filter on beside the payload (kept in the event's metadata, published in
    # the envelope's ``attributes``): e.g. a dossier's status after the event.
    attributes: dict[str, Any] = field(default_factory=dict)

    def metadata(self, context_metadata: dict[str, Any]) -> dict[str, Any]:
        """This event's metadata: its context's, with its own attributes when it has any."""
        if not self.attributes:
            return context_metadata
        return {**context_metadata, "attributes": dict(self.attributes)}


@dataclass(frozen=True)
class EventContext:
    """Why and on whose behalf events are written: becomes each event's metadata."""

    actor: Actor = SYSTEM
    correlation_id: str | None = None
    causation_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"actor": self.actor.as_dict()}
        if self.correlation_id:
            meta["correlation_id"] = self.correlation_id
        if self.causation_id:
            meta["causation_id"] = self.causation_id
        meta.update(self.extra)
        return meta


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One row of the log (slotted: replays create them by the hundred thousand)."""

    position: int
    stream_id: str
    stream_type: str
    version: int
    event_id: uuid.UUID
    event_type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    occurred_at: dt.datetime
    recorded_at: dt.datetime

    @property
    def actor(self) -> dict[str, Any] | None:
        return self.metadata.get("actor")

    def envelope(self) -> dict[str, Any]:
        """The message body published for this event (see contracts.fields.EnvelopeSchema)."""
        return {
            "event_id": str(self.event_id),
            "event_type": self.event_type,
            "schema_version": self.schema_version,
            "stream_id": self.stream_id,
            "stream_type": self.stream_type,
            "stream_version": self.version,
            "position": self.position,
            "occurred_at": self.occurred_at.isoformat(),
            "recorded_at": self.recorded_at.isoformat(),
            "correlation_id": self.metadata.get("correlation_id"),
            "causation_id": self.metadata.get("causation_id"),
            "actor": self.metadata.get("actor"),
            "data": self.data,
            **({"attributes": self.metadata["attributes"]} if self.metadata.get("attributes") else {}),
        }


@dataclass(frozen=True)
class AppendResult:
    """Where an append put its events."""

    stream_id: str
    first_position: int
    last_position: int
    version: int
