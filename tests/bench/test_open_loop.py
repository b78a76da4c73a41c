"""The open-loop runner of ``bench submit --rate``: paced by plan, timed from the plan, and not
stalled by the load generator's own collector or a thread per planned call."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

from bench.support import collector_held


def test_the_collector_is_held_off_inside_and_restored_after():
    assert gc.isenabled()
    with collector_held():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_collector_stays_off_after_if_it_was_off_before():
    gc.disable()
    try:
        with collector_held():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_open_loop_paces_times_and_pools_its_calls():
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", "from tests.bench.test_open_loop import _open_loop_check; "
                           "_open_loop_check()"], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def _open_loop_check() -> None:
    """Run in a fresh interpreter: a suite that has loaded eventlet turns the pool's threads green."""
    import threading
    import time

    from bench.submit import _run_open

    starts: dict[int, float] = {}
    threads: set[int] = set()
    collector_on: list[bool] = []

    def one(i: int) -> bool:
        starts[i] = time.perf_counter()
        threads.add(threading.get_ident())
        collector_on.append(gc.isenabled())
        time.sleep(0.002)
        if i == 7:
            raise ValueError("broken")
        return i != 3

    rate, seconds = 200.0, 0.5
    elapsed, latencies, failed = _run_open(rate, seconds, one)
    n = int(rate * seconds)
    assert sorted(starts) == list(range(n)) and len(latencies) == n
    assert failed == 2  # 3 returned false, 7 raised
    # paced by plan: the last call starts no sooner than its planned offset after the first
    assert starts[n - 1] - starts[0] >= (n - 1) / rate - 0.005
    assert elapsed >= (n - 1) / rate
    # timed from the plan, so every latency holds at least the call's own 2 ms
    assert min(latencies) >= 0.002
    # the pool grows to the calls in flight, not to one thread per planned call
    assert len(threads) < n // 2, len(threads)
    assert not any(collector_on) and gc.isenabled()
