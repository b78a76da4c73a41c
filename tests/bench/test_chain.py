"""``bench chain`` looks places up both ways on the running system and reports both side by side."""

from __future__ import annotations

import re

import pytest

from bench import chain

pytestmark = pytest.mark.integration


def test_both_ways_are_reported_for_a_chained_procedure_and_one_that_feeds_none(capsys):
    assert chain.main(["--places", "2", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    result = out.strip().splitlines()[-1]
    assert result.startswith("RESULT chain places=2 "), result
    figures = dict(re.findall(r"(\w+)=([0-9.]+)", result))
    for kind in ("chained", "unchained"):
        assert float(figures[f"{kind}_baseline_ms"]) > 0, kind  # a client opened for every lookup
        for key in ("_ms", "_ratio", "_broker_ms", "_baseline_broker_ms"):
            assert kind + key in figures, kind + key
    assert "1.001193 (chained)" in out and "1.000894 (unchained)" in out
