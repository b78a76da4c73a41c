"""Claiming timer ticks in the database: one claimant per tick, whoever asks."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from portal_common.ticks import TickCounts, claim_tick


def test_a_tick_is_claimed_once_and_the_next_one_again(fresh_schema):
    db = fresh_schema("ticks")
    interval = 3600.0  # one tick for the whole test
    won = claim_tick(db, "job", interval, "a")
    assert won is not None
    assert claim_tick(db, "job", interval, "b") is None
    assert claim_tick(db, "other-job", interval, "b") == won  # each timer has its own ticks
    with db.transaction(dict_rows=False) as cur:
        cur.execute("SELECT timer, tick, claimed_by FROM timer_ticks ORDER BY timer")
        assert cur.fetchall() == [("job", won, "a"), ("other-job", won, "b")]


def test_racing_claimants_get_one_winner(fresh_schema):
    db = fresh_schema("ticks")
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: claim_tick(db, "race", 3600.0, f"p{n}"), range(16)))
    assert sum(r is not None for r in results) == 1


def test_old_claims_are_pruned(fresh_schema, monkeypatch):
    db = fresh_schema("ticks")
    with db.transaction(dict_rows=False) as cur:
        cur.execute("INSERT INTO timer_ticks (timer, tick, claimed_by) VALUES ('job', 5, 'x'), ('keep', 5, 'x')")
    monkeypatch.setattr("portal_common.ticks.PRUNE_EVERY", 1)
    monkeypatch.setattr("portal_common.ticks.KEEP_TICKS", 10)
    assert claim_tick(db, "job", 0.001, "a") is not None
    with db.transaction(dict_rows=False) as cur:
        cur.execute("SELECT timer, tick FROM timer_ticks WHERE tick = 5 ORDER BY timer")
        assert cur.fetchall() == [("keep", 5)]


def test_counts_say_acted_and_skipped_per_timer():
    counts = TickCounts()
    counts.add("a", "acted")
    counts.add("a", "skipped")
    counts.add("a", "skipped")
    assert counts.snapshot() == {"a": {"acted": 1, "skipped": 2}}


def test_a_timer_needs_a_positive_interval():
    from portal_common.ticks import TickTimer

    with pytest.raises(ValueError, match="positive"):
        TickTimer(0)
