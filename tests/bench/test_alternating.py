"""The alternating-chunks measure the sign-in benchmarks share: every measure gets the same work."""

from __future__ import annotations

from bench.signin import ROUNDS, measure_alternating
from bench.support import Failures


def test_every_measure_runs_the_same_requests_and_its_failures_are_counted(capsys):
    calls = {"a": 0, "b": 0}

    def ok(k: int, i: int) -> bool:
        calls["a"] += 1
        return True

    def fails_on_odd(k: int, i: int) -> bool:
        calls["b"] += 1
        if i % 2:
            raise RuntimeError("boom")
        return True

    failures = Failures()
    measures = (("a", ok), ("b", fails_on_odd))
    results, n = measure_alternating(2, 10, measures, failures, "{n} each, {clients} in flight", 10)
    assert n == 2 * (10 // ROUNDS) * ROUNDS
    assert calls == {"a": n, "b": n}
    assert list(results) == ["a", "b"]
    assert [len(lat) for _, lat, _ in results.values()] == [n, n]
    assert [failed for _, _, failed in results.values()] == [0, n // 2]
    assert failures.total == n // 2
    assert capsys.readouterr().out.startswith(f"{n} each, 2 in flight\n")
