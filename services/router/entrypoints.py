"""The router's event handler, made to survive a broker restart.

The fix lives in ``portal_common.entrypoints`` (every service's RPCs use it too); this
module keeps the names the router and its tests import.
"""

from __future__ import annotations

from portal_common.entrypoints import ReconnectingEventHandler, ReconnectingQueueConsumer, event_handler

__all__ = ["ReconnectingEventHandler", "ReconnectingQueueConsumer", "event_handler"]
