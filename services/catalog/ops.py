"""The catalog service's operator surface, registered with ``portal_common.registry``.

It has no commands or gauges of its own yet: the registration gives ``portal-ops`` its event
log and the metrics endpoint its default port.
"""

from __future__ import annotations

from portal_common import registry

registration = registry.Registration(service="catalog", metrics_port=9102)
