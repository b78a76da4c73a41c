"""The registry behind the event catalogue: which event types exist, in which versions.

An event type is published by exactly one service, under the routing key equal to its name,
on that service's topic exchange ``<producer>.events``. A new meaning is a new version: old
versions stay registered so old events still validate and consumers can still read them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from marshmallow import Schema, ValidationError

from portal_common.eventstore.errors import EventSchemaError


@dataclass(frozen=True)
class EventContract:
    event_type: str
    version: int
    producer: str
    schema: type[Schema]
    summary: str

    @property
    def exchange(self) -> str:
        return f"{self.producer}.events"

    @property
    def routing_key(self) -> str:
        return self.event_type


class Catalogue:
    """Every published event type and version, with its marshmallow schema."""

    def __init__(self) -> None:
        self._contracts: dict[tuple[str, int], EventContract] = {}
        self._schemas: dict[tuple[str, int], Schema] = {}

    def register(
        self, event_type: str, version: int, producer: str, summary: str
    ) -> Callable[[type[Schema]], type[Schema]]:
        """Class decorator: ``@catalogue.register("DossierSubmitted", 1, "dossier", "...")``."""

        def decorate(schema_cls: type[Schema]) -> type[Schema]:
            key = (event_type, version)
            if key in self._contracts:
                raise ValueError(f"{event_type} v{version} is registered twice")
            others = {c.producer for c in self._contracts.values() if c.event_type == event_type}
            if others and others != {producer}:
                raise ValueError(f"{event_type} already belongs to {others.pop()}")
            self._contracts[key] = EventContract(event_type, version, producer, schema_cls, summary)
            self._schemas[key] = schema_cls()
            return schema_cls

        return decorate

    def __iter__(self) -> Iterator[EventContract]:
        return iter(sorted(self._contracts.values(), key=lambda c: (c.producer, c.event_type, c.version)))

    def __contains__(self, event_type: str) -> bool:
        return any(t == event_type for t, _ in self._contracts)

    def latest_version(self, event_type: str) -> int:
        versions = [v for t, v in self._contracts if t == event_type]
        if not versions:
            raise EventSchemaError(event_type, None, "unknown event type")
        return max(versions)

    def contract(self, event_type: str, version: int | None = None) -> EventContract:
        version = version or self.latest_version(event_type)
        try:
            return self._contracts[(event_type, version)]
        except KeyError:
            raise EventSchemaError(event_type, version, "unknown event version") from None

    def validate(self, event_type: str, version: int | None, data: dict) -> int:
        """Check ``data`` against the contract; returns the version it was checked against."""
        contract = self.contract(event_type, version)
        if not isinstance(data, dict):
            raise EventSchemaError(event_type, contract.version, "payload must be an object")
        try:
            self._schemas[(event_type, contract.version)].load(data)
        except ValidationError as exc:
            raise EventSchemaError(event_type, contract.version, exc.messages) from None
        return contract.version

    def by_producer(self, producer: str) -> list[EventContract]:
        return [c for c in self if c.producer == producer]
