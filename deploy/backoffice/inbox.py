"""What the back office has taken in, keyed by delivery id, so a second copy is a no-op.

Delivery is at least once on both channels (a router restart can send again what the agency
already has); the delivery id is stable for one dossier event and one agency, so remembering
it gives exactly-once effect. With a ``path`` the ids survive a restart (one per line).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

Handler = Callable[[dict[str, Any]], None]


class Inbox:
    def __init__(self, handler: Handler | None = None, path: str | Path | None = None):
        self.handler = handler
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self.seen: set[str] = set()
        self.received: list[dict[str, Any]] = []
        self.duplicates = 0
        if self.path and self.path.exists():
            self.seen.update(line.strip() for line in self.path.read_text().splitlines() if line.strip())

    def take(self, delivery: dict[str, Any]) -> bool:
        """Apply a delivery once; True when it was new. The handler runs before the id is
        remembered, so a handler that raises lets the sender's retry try again."""
        delivery_id = str(delivery.get("delivery_id") or "")
        if not delivery_id:
            raise ValueError("a delivery without delivery_id")
        with self._lock:
            if delivery_id in self.seen:
                self.duplicates += 1
                return False
            if self.handler is not None:
                self.handler(delivery)
            self.seen.add(delivery_id)
            self.received.append(delivery)
            if self.path:
                with self.path.open("a") as f:
                    f.write(delivery_id + "\n")
            return True
