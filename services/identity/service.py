"""nameko entrypoints of the identity service (thin: the work is in the modules beside it)."""

from __future__ import annotations

from portal_common.health import HealthRpc
from portal_common.logs import LogContext
from portal_common.nameko_ext import EventLog, Outbox, Storage


class IdentityService(HealthRpc):
    name = "identity"

    db = Storage()
    events = EventLog()
    outbox = Outbox()
    log_context = LogContext()
