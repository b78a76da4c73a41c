"""Waiting for a condition, stopping a child process politely, then firmly, and serving a whole
system to a fixture."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 20.0, interval: float = 0.1,
             what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something true, and return that; fail the test
    (naming ``what`` and the last answer) when ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def stop(proc: subprocess.Popen, grace: float = 15, *, group: bool = False,
         first: signal.Signals = signal.SIGTERM) -> None:
    """Send ``first`` (to the process group when ``group``), wait ``grace`` seconds for the
    process to exit, then kill it. A process that already exited is left alone."""
    if proc.poll() is not None:
        return
    _signal(proc, first, group)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        _signal(proc, signal.SIGKILL, group)
        proc.wait(5)


def _signal(proc: subprocess.Popen, sig: signal.Signals, group: bool) -> None:
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)


def serve(system: Any, logs: Path, timeout: float) -> Iterator[Any]:
    """For a fixture's ``yield from``: start ``system`` (a ``LocalSystem``), yield it once ready
    and stop it afterwards. One that never gets ready is stopped and the tail of every log in
    ``logs`` printed (pytest shows it with the error), so a failed start says why."""
    system.start()
    try:
        system.wait_ready(timeout=timeout)
    except Exception:
        system.stop()
        for log in sorted(logs.iterdir()):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")
        raise
    yield system
    system.stop()
