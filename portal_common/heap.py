"""Keep what a service loaded at start-up out of Python's full garbage collections.

A service process holds a large, long-lived heap from its imports and set-up (nameko, kombu,
marshmallow schemas, the event catalogue, psycopg2): 80,000-100,000 tracked objects. Python's
full (generation-2) collection walks every one of them, and each such pass paused the whole
process, with every request in flight in it, for 20-50 ms while it served (over 100 ms just
after start), which `bench submit --rate half` saw in its submission p99 (bench/README.md,
"submit"). ``gc.freeze()`` moves the objects alive at start into a permanent generation that
collections skip; the collector still runs over what the process allocates afterwards.
"""

from __future__ import annotations

import gc
import logging

from nameko.extensions import DependencyProvider

log = logging.getLogger(__name__)


_frozen = False


def freeze_startup_heap() -> int:
    """Collect once, then freeze what survives: the number of objects frozen. Only the first
    call in a process freezes; a later one (another container started in the same process, as
    tests do) leaves the heap as it is, so what those allocate stays collectable."""
    global _frozen
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True
    return gc.get_freeze_count()


class StartupHeapFrozen(DependencyProvider):
    """Freezes the heap when the container starts: after every extension's set-up (imports,
    pools, schemas), as its consumers begin."""

    def start(self) -> None:
        frozen = freeze_startup_heap()
        log.info("start-up heap frozen out of the collector: %d objects", frozen)
