"""What the open loop reports of the machine's CPUs during a window."""

from __future__ import annotations

import pytest

from bench import support
from bench.support import MachineCpu


def test_busy_and_stolen_shares_and_the_worst_second():
    meter = MachineCpu()
    # (busy, stolen, all) ticks every quarter second: one second with half the time stolen
    meter.samples = [(0, 0, 0), (10, 0, 50), (20, 0, 100), (30, 0, 150), (40, 0, 200),
                     (45, 25, 250), (50, 50, 300), (55, 75, 350), (60, 100, 400)]
    busy, stolen, worst = meter.summary()
    assert busy == pytest.approx(15.0) and stolen == pytest.approx(25.0)
    assert worst == pytest.approx(50.0)


def test_no_figures_without_two_samples(monkeypatch):
    assert MachineCpu().summary() is None
    monkeypatch.setattr(support, "_cpu_ticks", lambda: None)
    with MachineCpu() as meter:
        pass
    assert meter.samples == [] and meter.summary() is None


def test_it_samples_the_real_machine_while_it_runs():
    with MachineCpu() as meter:
        support.time.sleep(0.6)
    busy, stolen, worst = meter.summary()
    assert len(meter.samples) >= 3
    assert 0.0 <= busy <= 100.0 and 0.0 <= stolen <= 100.0 and 0.0 <= worst <= 100.0
