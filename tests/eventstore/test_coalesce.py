"""Unit tests of ``portal_common.coalesce``: items of concurrent callers are handled in
batches, a lone item goes the one-at-a-time way, and a failed batch falls back to each item
alone so that only the bad one fails (threads stand in for nameko's workers)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from portal_common.coalesce import ALONE, Coalescer


class Recorder:
    """Handlers that record what they were given; ``gate`` holds the first call until set."""

    def __init__(self, bad: set[str] | None = None):
        self.bad = bad or set()
        self.batches: list[list[str]] = []
        self.alone: list[str] = []
        self.gate = threading.Event()
        self.started = threading.Event()
        self._lock = threading.Lock()

    def handle_batch(self, items: list[str]) -> list[object]:
        with self._lock:
            self.batches.append(list(items))
        if any(i in self.bad for i in items):
            raise RuntimeError("a bad item in the batch")
        return [ALONE if i.startswith("alone") else f"done {i}" for i in items]

    def handle_one(self, item: str) -> str:
        self.started.set()
        self.gate.wait(5)
        with self._lock:
            self.alone.append(item)
        if item in self.bad:
            raise ValueError(f"bad {item}")
        return f"alone {item}"


def _submit_all(coalescer: Coalescer, recorder: Recorder, items: list[str],
                before_release: Callable[[], None] = lambda: None) -> dict[str, object]:
    """Submit ``items`` from threads while the first (handled alone) holds the lead, so the
    rest queue up and form the next batch (``before_release`` runs once they wait); returns
    each item's result or exception."""
    results: dict[str, object] = {}

    def run(item: str) -> None:
        try:
            results[item] = coalescer.submit(item)
        except Exception as exc:  # what the caller would see
            results[item] = exc

    first = threading.Thread(target=run, args=(items[0],))
    first.start()
    assert recorder.started.wait(5)
    others = [threading.Thread(target=run, args=(i,)) for i in items[1:]]
    for t in others:
        t.start()
    deadline = time.monotonic() + 5
    while len(coalescer._waiting) < len(others) and time.monotonic() < deadline:
        time.sleep(0.01)
    before_release()
    recorder.gate.set()
    for t in [first, *others]:
        t.join(10)
    return results


def test_a_lone_item_is_handled_one_at_a_time_and_raises_its_own_failure():
    recorder = Recorder(bad={"x"})
    recorder.gate.set()
    coalescer = Coalescer(recorder.handle_batch, recorder.handle_one)
    assert coalescer.submit("a") == "alone a"
    with pytest.raises(ValueError, match="bad x"):
        coalescer.submit("x")
    assert recorder.batches == [] and recorder.alone == ["a", "x"]
    assert coalescer.submit("b") == "alone b"  # the lead was given back after the failure


def test_items_in_flight_together_are_handled_as_one_batch():
    recorder = Recorder()
    coalescer = Coalescer(recorder.handle_batch, recorder.handle_one)
    results = _submit_all(coalescer, recorder, ["first", "b", "c", "d"])
    assert results == {"first": "alone first", "b": "done b", "c": "done c", "d": "done d"}
    assert recorder.batches == [["b", "c", "d"]]
    assert coalescer.sizes == [1, 3]


def test_a_batch_is_at_most_max_batch_items_and_the_rest_follow():
    recorder = Recorder()
    coalescer = Coalescer(recorder.handle_batch, recorder.handle_one, max_batch=2)
    results = _submit_all(coalescer, recorder, ["first", "b", "c", "d", "e"])
    assert set(results.values()) == {"alone first", "done b", "done c", "done d", "done e"}
    assert sorted(len(b) for b in recorder.batches) == [2, 2]


def test_a_failed_batch_falls_back_to_each_item_alone_and_only_the_bad_one_fails():
    recorder = Recorder(bad={"poison"})
    coalescer = Coalescer(recorder.handle_batch, recorder.handle_one)
    results = _submit_all(coalescer, recorder, ["first", "b", "poison", "d"])
    assert recorder.batches == [["b", "poison", "d"]]
    assert results["first"] == "alone first"
    assert results["b"] == "alone b" and results["d"] == "alone d"
    assert isinstance(results["poison"], ValueError)  # its own failure, raised in its own worker
    assert sorted(recorder.alone) == ["b", "d", "first", "poison"]


def test_an_item_the_batch_sends_alone_is_handled_one_at_a_time():
    recorder = Recorder()
    coalescer = Coalescer(recorder.handle_batch, recorder.handle_one)
    results = _submit_all(coalescer, recorder, ["first", "b", "alone-c"])
    assert results == {"first": "alone first", "b": "done b", "alone-c": "alone alone-c"}
    assert sorted(recorder.alone) == ["alone-c", "first"]


def test_several_batches_can_be_in_flight():
    recorder = Recorder()
    coalescer = Coalescer(recorder.handle_batch, recorder.handle_one, parallel=2)
    recorder.gate.set()
    threads = [threading.Thread(target=coalescer.submit, args=(f"i{n}",)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    handled = sorted(recorder.alone + [i for b in recorder.batches for i in b])
    assert handled == sorted(f"i{n}" for n in range(20))  # each once
    assert coalescer._leading == 0 and not coalescer._waiting


def test_with_single_batches_a_lone_item_is_a_batch_of_one_and_falls_back_alone():
    recorder = Recorder(bad={"x"})
    recorder.gate.set()
    coalescer = Coalescer(recorder.handle_batch, recorder.handle_one, single_batches=True)
    assert coalescer.submit("a") == "done a"
    assert coalescer.submit("alone-b") == "alone alone-b"  # the batch sent it the one-at-a-time way
    with pytest.raises(ValueError, match="bad x"):  # the batch of one failed: its own failure, alone
        coalescer.submit("x")
    assert recorder.batches == [["a"], ["alone-b"], ["x"]] and recorder.alone == ["alone-b", "x"]
    assert coalescer.submit("c") == "done c"  # the lead was given back after the failure
    assert coalescer.sizes == [1, 1, 1, 1]


def test_with_a_linger_items_arriving_just_after_a_lone_one_join_its_batch():
    recorder = Recorder()
    recorder.gate.set()
    coalescer = Coalescer(recorder.handle_batch, recorder.handle_one, linger_s=2.0)
    results: dict[str, object] = {}
    threads = [threading.Thread(target=lambda i=i: results.update({i: coalescer.submit(i)})) for i in "abc"]
    threads[0].start()
    time.sleep(0.1)  # "a" leads and lingers; "b" and "c" come within its linger
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {"a": "done a", "b": "done b", "c": "done c"}
    assert recorder.batches == [["a", "b", "c"]] and recorder.alone == []  # one batch, not a lone one first


def test_a_lone_item_is_handled_after_its_linger():
    recorder = Recorder()
    recorder.gate.set()
    coalescer = Coalescer(recorder.handle_batch, recorder.handle_one, linger_s=0.2)
    started = time.monotonic()
    assert coalescer.submit("a") == "alone a"  # nobody came: alone, after the linger
    assert time.monotonic() - started >= 0.2


def test_a_leader_with_others_waiting_does_not_linger():
    recorder = Recorder()
    coalescer = Coalescer(recorder.handle_batch, recorder.handle_one)

    def linger_long() -> None:  # once the others wait: a leader that lingered would take 30 s
        assert len(coalescer._waiting) == 3
        coalescer.linger_s = 30

    started = time.monotonic()
    results = _submit_all(coalescer, recorder, ["first", "b", "c", "d"], linger_long)
    assert time.monotonic() - started < 10
    assert results == {"first": "alone first", "b": "done b", "c": "done c", "d": "done d"}
    assert recorder.batches == [["b", "c", "d"]]
