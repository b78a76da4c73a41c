"""Running one task in many threads released at the same moment (races on purpose)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def all_at_once(task: Callable[[int], T], count: int) -> tuple[list[T], list[BaseException]]:
    """Run ``task(0)`` … ``task(count - 1)`` in as many threads, held at a barrier until all
    are ready; what the calls returned and what they raised, each in finishing order."""
    barrier = threading.Barrier(count)
    results: list[T] = []
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results.append(task(i))
        except BaseException as exc:  # the caller's assertions report it
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors
