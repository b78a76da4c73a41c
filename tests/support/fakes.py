"""Stand-ins for unit tests of a single worker (nameko ``worker_factory``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock


class RecordingDatabase:
    """A database that records whether a transaction was begun (its cursor does nothing)."""

    def __init__(self) -> None:
        self.transactions = 0

    @contextmanager
    def transaction(self) -> Iterator[mock.MagicMock]:
        self.transactions += 1
        yield mock.MagicMock()
