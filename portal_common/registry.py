"""What each service adds to the operator surface, found without the library naming a service.

A service declares one ``Registration`` (in its ``ops.py``) and points the ``portal.services``
entry point group at it in ``pyproject.toml``::

    [project.entry-points."portal.services"]
    <service> = "services.<service>.ops:registration"

``portal-ops`` adds every registered service's commands, the metrics endpoint asks the
running service's registration for its scrape-time readings, and the log context asks it
for the fields a worker's arguments name. Registrations load on first use, one entry point
at a time where only one service is wanted, so importing the library imports no service.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from importlib.metadata import entry_points
from typing import Any

GROUP = "portal.services"

CommandAdder = Callable[[argparse._SubParsersAction], None]
ReadingSource = Callable[[Any, str], Iterable["Reading"]]
LogFields = Callable[[Mapping[str, Any]], Mapping[str, Any]]


@dataclass(frozen=True)
class Gauge:
    """A gauge family a service's readings fill; ``per_service`` puts a ``service`` label first."""

    name: str
    documentation: str
    labels: tuple[str, ...] = ()
    per_service: bool = True


@dataclass(frozen=True)
class Reading:
    """One sample of a registered gauge, read at scrape time (label values without ``service``)."""

    gauge: str
    labels: tuple[str, ...]
    value: float


@dataclass(frozen=True)
class DossierRecords:
    """Rows a service keeps about one dossier, for ``portal-ops export``.

    ``read(code, dsn, schema)`` returns them as dicts; the export puts them under ``section``.
    """

    section: str
    read: Callable[[str, str, str], list[dict[str, Any]]]


@dataclass(frozen=True)
class Registration:
    """One service's operator commands, metric readings, log fields and defaults.

    ``commands`` adds sub-commands to ``portal-ops``; ``readings(cursor, schema)`` reads the
    service's own tables inside the scrape's transaction and yields samples of ``gauges``;
    ``log_fields(arguments)`` turns a worker's call arguments into fields of its log lines.
    """

    service: str
    commands: CommandAdder | None = None
    gauges: tuple[Gauge, ...] = ()
    readings: ReadingSource | None = None
    log_fields: LogFields | None = None
    dossier_records: DossierRecords | None = None
    metrics_port: int = 0
    event_log: bool = True
    package: str = ""  # the service's package (its migrations, its seed); by default its ops module's


_lock = threading.RLock()
_by_name: dict[str, Registration | None] = {}
_all_loaded = False


def _load(entry_point) -> Registration:
    registration = entry_point.load()
    if not isinstance(registration, Registration) or registration.service != entry_point.name:
        raise TypeError(f"entry point {entry_point.name} = {entry_point.value} is not the Registration "
                        f"of service {entry_point.name!r}")
    if not registration.package:
        registration = replace(registration, package=entry_point.module.rpartition(".")[0])
    return registration


def registrations() -> list[Registration]:
    """Every registered service, in name order."""
    global _all_loaded
    with _lock:
        if not _all_loaded:
            for entry_point in entry_points(group=GROUP):
                if _by_name.get(entry_point.name) is None:
                    _by_name[entry_point.name] = _load(entry_point)
            _all_loaded = True
        return [r for _, r in sorted(_by_name.items()) if r is not None]


def find(service: str) -> Registration | None:
    """The registration of one service (loading only its entry point), or None."""
    with _lock:
        if service not in _by_name:
            found = [ep for ep in entry_points(group=GROUP) if ep.name == service]
            _by_name[service] = _load(found[0]) if found else None
        return _by_name[service]


def register(registration: Registration) -> None:
    """Register a service in this process without an entry point (tools and tests)."""
    with _lock:
        _by_name[registration.service] = registration


def run_commands(commands: CommandAdder, prog: str, argv: list[str] | None = None) -> int:
    """Run one of a single service's commands (its ``python -m <package>.ops``), without the
    rest of ``portal-ops``."""
    parser = argparse.ArgumentParser(prog=prog)
    commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def services() -> tuple[str, ...]:
    """The names of the registered services that keep an event log."""
    return tuple(r.service for r in registrations() if r.event_log)


class Lookup(Mapping[str, Any]):
    """One attribute of every registration by service name (``metrics_port``, ``package`` ...),
    read when asked, so a module-level mapping of it imports no service."""

    def __init__(self, attribute: str):
        self.attribute = attribute

    def __getitem__(self, service: str) -> Any:
        registration = find(service)
        if registration is None:
            raise KeyError(service)
        return getattr(registration, self.attribute)

    def __iter__(self) -> Iterator[str]:
        return iter([r.service for r in registrations()])

    def __len__(self) -> int:
        return len(registrations())
