"""What an RPC call carries about its caller, turned into event metadata.

The gateway passes ``context`` (``ApiCall.context()``: request id, client address, actor) as
an argument of the RPC calls that change something; the request id also travels as nameko's
``correlation_id``. ``event_context`` turns both into the ``EventContext`` an append records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nameko.extensions import DependencyProvider

from portal_common.eventstore.events import SYSTEM, Actor, EventContext


@dataclass(frozen=True)
class CallInfo:
    correlation_id: str | None
    call_id: str | None


class CallContext(DependencyProvider):
    """Gives a worker its correlation id (the gateway's request id) and call id."""

    def get_dependency(self, worker_ctx) -> CallInfo:
        return CallInfo(worker_ctx.context_data.get("correlation_id"), worker_ctx.call_id)


def actor_from(context: dict[str, Any] | None) -> Actor:
    """The actor named in a gateway context, or the system."""
    raw = (context or {}).get("actor")
    if not raw:
        return SYSTEM
    return Actor(kind=str(raw.get("kind", "system")), id=str(raw.get("id", "system")),
                 agency_code=raw.get("agency_code"))


def event_context(
    context: dict[str, Any] | None, call: CallInfo | None = None, causation_id: str | None = None
) -> EventContext:
    """Metadata for events written on behalf of this call."""
    ctx = context or {}
    correlation = ctx.get("request_id") or (call.correlation_id if call else None)
    return EventContext(actor=actor_from(ctx), correlation_id=correlation, causation_id=causation_id)
