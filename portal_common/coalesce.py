"""Group commit for event handlers: messages that concurrent workers are handling at the same
time are handled together, so a batch pays one transaction (and one broker confirm) where each
message paid its own.

nameko hands each message of a queue to a worker of its own (up to ``max_workers``, which is
also the consumer's prefetch), and acknowledges it when the worker returns. A handler calls
``Coalescer.submit(item)`` instead of doing the work itself:

- a worker that arrives while fewer than ``parallel`` batches are being handled *leads*: it
  takes its own item and every item waiting (up to ``max_batch``), runs ``handle_batch`` on
  them, then hands the lead to the oldest item still waiting, so the next batch starts at
  once (a few batches in flight keep the database busy while one waits for its answers);
- a worker that arrives meanwhile waits for the batch its item lands in.

Every worker returns only after its item's batch has finished, so nameko's ack still follows
the commit of the item's effects. When nothing else is in flight a batch is one item, handled
at once, at no added latency (it keeps the lead while it runs, so the messages arriving
meanwhile form the next batch): with ``handle_one``, or with ``handle_batch`` when
``single_batches`` is set, for a handler whose batch way costs less than its single way even
for one item (``handle_one`` then takes what that batch sends ``ALONE`` or fails).

With ``linger_s``, a worker that would lead a batch of one waits that long first, for the
items arriving meanwhile to join it: at a moderate rate, where events come one at a time and a
batch would hold one, that trades a few milliseconds of each event's handling for one
transaction (and one confirm) per several events. Under load batches form without waiting,
and a worker never lingers when others already wait.

When ``handle_batch`` raises, nothing of the batch is taken as done: each worker then runs
``handle_one`` on its own item, in its own worker, so a failure is that message's alone and
goes the usual way (retry with back-off, then parking: ``portal_common.redelivery``), while
the other messages of the batch succeed. ``handle_batch`` can also send single items that
way (``ALONE`` in its result). Both handlers must therefore be idempotent (``handle_once``):
the fallback may repeat what a failed batch committed before it failed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: in ``handle_batch``'s result: handle this item alone, with ``handle_one``
ALONE: Any = type("Alone", (), {"__repr__": lambda self: "ALONE"})()


class _Slot:
    __slots__ = ("done", "item", "lead", "ok", "result")

    def __init__(self, item: Any):
        self.item = item
        self.done = threading.Event()
        self.lead = False
        self.ok = False
        self.result: Any = None


class Coalescer(Generic[T]):
    """Handles items of concurrent callers in batches (see the module's docstring).

    ``handle_batch(items)`` returns one result per item (``ALONE``: handle it alone);
    ``handle_one(item)`` is the one-at-a-time path, and the fallback."""

    def __init__(self, handle_batch: Callable[[list[T]], Sequence[Any]], handle_one: Callable[[T], Any],
                 max_batch: int = 50, parallel: int = 1, name: str = "batch", single_batches: bool = False,
                 linger_s: float = 0.0):
        self.handle_batch = handle_batch
        self.linger_s = max(0.0, linger_s)
        self.single_batches = single_batches
        self.handle_one = handle_one
        self.max_batch = max(1, max_batch)
        self.parallel = max(1, parallel)
        self.name = name
        self._lock = threading.Lock()
        self._waiting: list[_Slot] = []
        self._leading = 0  # batches being handled
        #: sizes of the batches handled (for tests and metrics), the last 1000
        self.sizes: list[int] = []

    def submit(self, item: T) -> Any:
        """Handle ``item`` in the next batch; returns its result, or raises its own failure
        (from ``handle_one``) once its batch failed."""
        slot = _Slot(item)
        with self._lock:
            lead = self._leading < self.parallel
            if lead:
                self._leading += 1
            else:
                self._waiting.append(slot)
        if not lead:
            slot.done.wait()
        if lead or slot.lead:
            self._lead(slot)  # a batch of one handles the item alone (and raises its failure)
        if slot.ok and slot.result is not ALONE:
            return slot.result
        return self.handle_one(item)

    def _lead(self, slot: _Slot) -> None:
        if self.linger_s and self.max_batch > 1 and not self._waiting:
            time.sleep(self.linger_s)  # green under nameko: the workers arriving meanwhile queue up
        with self._lock:
            batch = [slot, *self._waiting[:self.max_batch - 1]]
            del self._waiting[:self.max_batch - 1]
        self.sizes = [*self.sizes[-999:], len(batch)]
        try:
            if len(batch) == 1 and not self.single_batches:  # the one-at-a-time path, its failure raised here
                slot.result, slot.ok = self.handle_one(slot.item), True
            else:
                self._handle(batch)
        finally:
            with self._lock:
                if self._waiting:
                    following = self._waiting.pop(0)
                    following.lead = True
                    following.done.set()
                else:
                    self._leading -= 1
            for s in batch[1:]:
                s.done.set()

    def _handle(self, batch: list[_Slot]) -> None:
        try:
            results = self.handle_batch([s.item for s in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{self.name}: {len(results)} results for {len(batch)} items")
        except Exception:
            # nothing of it is taken as done: each worker handles its own item alone
            log.warning("%s of %d failed; handling its messages one by one", self.name, len(batch), exc_info=True)
            return
        for s, result in zip(batch, results, strict=True):
            s.ok, s.result = True, result
