"""Structured JSON logs: one object per line with service, request id and dossier code.

The request id travels as nameko's ``correlation_id`` context value (the gateway sets it from
``X-Request-ID``); ``LogContext`` copies it into a greenthread-local before each worker
runs, and ``JsonFormatter`` adds it to every line the worker logs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import json
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from nameko.extensions import DependencyProvider

from portal_common import registry
from portal_common.errors import ServiceError, Unavailable

_local = threading.local()  # greenthread-local once eventlet has patched threading

# No line carries a thread's name: a green thread's is meaningless, and asking for it went
# through eventlet's patched ``current_thread`` on every record (7 of its 9 microseconds).
logging.logThreads = False
logging.logMultiprocessing = False

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def bind(**values: Any) -> None:
    """Attach values (request_id, dossier_code ...) to the current worker's log lines."""
    current = getattr(_local, "values", None) or {}
    current.update({k: v for k, v in values.items() if v is not None})
    _local.values = current


def clear() -> None:
    _local.values = {}


def bound() -> dict[str, Any]:
    return dict(getattr(_local, "values", None) or {})


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object; secrets never reach here by construction."""

    def __init__(self, *args: Any, service: str | None = None, **kwargs: Any):
        super().__init__()
        self.service = service or os.environ.get("SERVICE_NAME")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.service:
            entry["service"] = self.service
        entry.update(bound())
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class CallerRefusals(logging.Filter):
    """Drop nameko's error record, traceback and all, for a worker that refused its caller
    with a typed error (``ServiceError``: a 4xx at the gateway): a typo in a looked-up code or a
    reused Idempotency-Key is not a fault for an operator to read. The refusal is still one
    line: "rpc <service>.<method> refused" (``portal_common.metrics``) in a service, the route
    and its status in the gateway. ``Unavailable`` (a dependency that did not answer) and any
    other exception keep their record. In each service's LOGGING, on its handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "nameko.containers" or not record.exc_info:
            return True
        exc = record.exc_info[1]
        return not isinstance(exc, ServiceError) or isinstance(exc, Unavailable)


_CODE_ARGS = ("code", "dossier_code")
_signatures: dict[tuple[type, str], inspect.Signature | None] = {}


def worker_arguments(worker_ctx) -> dict[str, Any]:
    """A worker's call arguments by parameter name (keyword arguments only when unbindable)."""
    key = (type(worker_ctx.service), worker_ctx.entrypoint.method_name)
    if key not in _signatures:
        try:
            _signatures[key] = inspect.signature(getattr(key[0], key[1]))
        except (AttributeError, TypeError, ValueError):
            _signatures[key] = None
    sig = _signatures[key]
    values: dict[str, Any] = dict(worker_ctx.kwargs or {})
    if sig is not None:
        with contextlib.suppress(TypeError):
            values = dict(sig.bind_partial(None, *worker_ctx.args, **(worker_ctx.kwargs or {})).arguments)
    return values


def code_arguments(values: Mapping[str, Any]) -> dict[str, Any]:
    """Log fields of a service whose ``code``/``dossier_code`` arguments name a dossier.

    A service opts in by registering this as its ``log_fields`` (``portal_common.registry``).
    """
    for name in _CODE_ARGS:
        if isinstance(values.get(name), str):
            return {"dossier_code": values[name][:64]}
    return {}


def log_fields_of(worker_ctx) -> dict[str, Any]:
    """The fields a worker's arguments give its log lines: the dossier of an event envelope,
    else the fields its service registers (``portal_common.registry``)."""
    values = worker_arguments(worker_ctx)
    for value in values.values():
        if isinstance(value, dict) and value.get("stream_type") == "dossier" and value.get("stream_id"):
            return {"dossier_code": str(value["stream_id"])}
        if isinstance(value, dict) and isinstance(value.get("dossier_code"), str):
            return {"dossier_code": value["dossier_code"]}
    registration = registry.find(worker_ctx.service_name)
    if registration is None or registration.log_fields is None:
        return {}
    return dict(registration.log_fields(values))


class LogContext(DependencyProvider):
    """Binds the worker's request id (nameko correlation id) and dossier code for its log lines."""

    def worker_setup(self, worker_ctx) -> None:
        clear()
        try:
            fields = log_fields_of(worker_ctx)
        except Exception:  # never let log decoration break a worker
            fields = {}
        bind(
            service=worker_ctx.service_name,
            request_id=worker_ctx.context_data.get("correlation_id"),
            entrypoint=worker_ctx.entrypoint.method_name,
            **fields,
        )

    def worker_teardown(self, worker_ctx) -> None:
        clear()
