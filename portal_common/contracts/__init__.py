"""The event catalogue: one place that lists every published event with its schema.

Each producing service declares its events in its own module here; importing this package
registers them all, so a publisher can refuse a malformed event and the AsyncAPI document can
be generated from the same source.
"""

from portal_common.contracts.registry import Catalogue, EventContract

CATALOGUE = Catalogue()

# Register every producer's events (imported for their side effect on CATALOGUE).
from portal_common.contracts import (  # noqa: E402
    catalog,  # noqa: F401
    dossier,  # noqa: F401
    identity,  # noqa: F401
    payment,  # noqa: F401
    router,  # noqa: F401
    system,  # noqa: F401
    vneid,  # noqa: F401
)

__all__ = ["CATALOGUE", "Catalogue", "EventContract"]
