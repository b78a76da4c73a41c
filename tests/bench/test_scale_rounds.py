"""``bench scale`` alternates its two systems round by round, so drift falls on both alike."""

from __future__ import annotations

import pytest

from bench.scale import alternate


class FakeSystem:
    def __init__(self, label: str, rates: list[float], calls: list[tuple[str, int]]):
        self.label, self._rates, self._calls = label, iter(rates), calls

    def round(self, n: int) -> float:
        self._calls.append((self.label, n))
        return next(self._rates)


def test_rounds_alternate_which_system_goes_first_and_each_gives_its_ratio(capsys):
    calls: list[tuple[str, int]] = []
    single = FakeSystem("one", [100.0, 100.0, 80.0, 100.0], calls)
    multi = FakeSystem("two", [110.0, 90.0, 100.0, 100.0], calls)

    ratios = alternate(single, multi, 4, 50)

    assert [label for label, _ in calls] == ["one", "two", "two", "one", "one", "two", "two", "one"]
    assert all(n == 50 for _, n in calls)
    assert ratios == pytest.approx([1.1, 0.9, 1.25, 1.0])
    assert "round 3: one 80.0/s, two 100.0/s; ratio 1.250" in capsys.readouterr().out
