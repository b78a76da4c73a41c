"""bench profile's meter: CPU time, and time runnable but waiting for a CPU, per process group."""

from __future__ import annotations

import multiprocessing
import os
import time

import psutil

from bench.profile import CpuMeter


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_processes_outnumbering_the_cores_are_measured_waiting_for_one():
    """Twice as many spinning processes as cores: each is on a CPU about half the time and
    waits for one the other half; a sleeping process does neither."""
    ctx = multiprocessing.get_context("fork")
    spinners = [ctx.Process(target=_spin, args=(1.5,)) for _ in range(2 * (os.cpu_count() or 1))]
    sleeper = ctx.Process(target=time.sleep, args=(1.5,))
    for proc in (*spinners, sleeper):
        proc.start()
    try:
        meter = CpuMeter({"spinners": lambda: [psutil.Process(p.pid) for p in spinners],
                          "sleeper": lambda: [psutil.Process(sleeper.pid)]})
        meter.start()
        time.sleep(1.0)
        meter.stop()
    finally:
        for proc in (*spinners, sleeper):
            proc.join(10)
    cores = os.cpu_count() or 1
    assert meter.used["spinners"] > 0.3 * cores  # of 1.0 s on each core (less with other work about)
    assert meter.waited["spinners"] > 0.3 * cores  # as many again wait: about 1.0 s per core
    assert meter.used["sleeper"] < 0.05 and meter.waited["sleeper"] < 0.05
