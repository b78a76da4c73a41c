"""What every use-case module of identity uses: input checked with the boundary schemas,
CPU-heavy work kept off the event loop, the clock, and appending events inside the caller's
transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

from marshmallow import Schema, ValidationError

from portal_common.db import CommittingCursor
from portal_common.errors import InvalidInput
from portal_common.eventstore import EventContext, EventStore, NewEvent

T = TypeVar("T")


def load(schema_cls: type[Schema], data: Any) -> dict:
    """Validate an RPC argument with the contract schema; every bad field is listed."""
    if not isinstance(data, dict):
        raise InvalidInput("validation_failed", "Expected an object.")
    try:
        return schema_cls().load(data)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_body": exc.messages}
        raise InvalidInput("validation_failed", "Some fields are not valid.",
                           [{"field": k, "message": m} for k, v in messages.items()
                            for m in (v if isinstance(v, list) else [str(v)])]) from None


def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """Run CPU-bound work (Argon2) in a real thread so other greenthreads keep going."""
    try:
        from eventlet import patcher, tpool
    except ImportError:  # pragma: no cover
        return fn(*args)
    if patcher.is_monkey_patched("thread"):
        return tpool.execute(fn, *args)
    return fn(*args)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def record(store: EventStore, cur, stream_id: str, events: list[NewEvent], ctx: EventContext,
           commit: bool = False) -> None:
    """Append events inside the caller's transaction (the last write of a command); with
    ``commit`` the append commits it in the same round trip (the log's lock is held one
    wait less: nothing may run in the transaction after it)."""
    cursor = cur.connection.cursor()
    store.append(stream_id, None, events, stream_type=stream_id.split("-", 1)[0], context=ctx,
                 cursor=CommittingCursor(cursor) if commit else cursor)


def client_ip(context: dict | None) -> str | None:
    ip = (context or {}).get("client_ip")
    return str(ip)[:64] if ip else None
