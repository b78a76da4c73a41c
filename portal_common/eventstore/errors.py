"""Typed failures of the event store; callers map them to RPC / HTTP errors."""

from __future__ import annotations


class EventStoreError(Exception):
    """Base class of every event-store failure."""


class ConcurrencyError(EventStoreError):
    """The stream moved on since the caller read it; nothing was written."""

    def __init__(self, stream_id: str, expected: int | None, actual: int | None):
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(f"stream {stream_id!r} is at version {actual}, expected {expected}")


class DuplicateEventError(ConcurrencyError):
    """An event with this id is already recorded (a retried append); nothing was written.

    A subclass of ``ConcurrencyError`` so callers that retry or report conflicts keep working;
    callers that make appends idempotent by event id can catch it on its own.
    """

    def __init__(self, stream_id: str, event_id: str | None):
        self.event_id = event_id
        EventStoreError.__init__(self, f"event {event_id} is already recorded (stream {stream_id!r})")
        self.stream_id = stream_id
        self.expected = None
        self.actual = None


class EventSchemaError(EventStoreError):
    """An event does not match its published contract; nothing was written."""

    def __init__(self, event_type: str, version: int | None, errors: dict | str):
        self.event_type = event_type
        self.version = version
        self.errors = errors
        super().__init__(f"{event_type} v{version} refused: {errors}")


class AppendOnlyViolation(EventStoreError):
    """Something tried to change or remove a recorded event."""
