"""Reading: a stream up to a version or a point in time; the whole log from a position, in batches."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.eventstore.conftest import probe, probes

pytestmark = pytest.mark.integration


def _recorded_at(log, position: int) -> dt.datetime:
    return next(e.recorded_at for e in log.read_all(position - 1, 1))


def test_read_stream_up_to_a_version(log):
    log.append("dossier-A", 0, probes(1, 5))
    log.append("dossier-B", 0, probes(100, 2))
    assert [e.version for e in log.read_stream("dossier-A", to_version=3)] == [1, 2, 3]
    assert [e.data["sequence"] for e in log.read_stream("dossier-A", to_version=1)] == [1]
    assert log.read_stream("dossier-A", to_version=0) == []
    assert len(log.read_stream("dossier-A", to_version=99)) == 5
    assert log.read_stream("dossier-missing") == []


def test_read_stream_as_of_a_point_in_time(log, superuser):
    """Each append's recorded_at is the database's clock at the time of the write."""
    first = log.append("dossier-A", 0, probes(1, 2))
    cut = _recorded_at(log, first.last_position)
    with superuser.cursor() as cur:  # make sure the clock moves on between the two appends
        cur.execute("SELECT pg_sleep(0.002)")
    log.append("dossier-A", 2, probes(3, 2))
    as_of = log.read_stream("dossier-A", as_of=cut)
    assert [e.version for e in as_of] == [1, 2]
    assert all(e.recorded_at <= cut for e in as_of)
    before_anything = cut - dt.timedelta(days=1)
    assert log.read_stream("dossier-A", as_of=before_anything) == []
    assert [e.version for e in log.read_stream("dossier-A", as_of=dt.datetime.now(dt.UTC) + dt.timedelta(1))] \
        == [1, 2, 3, 4]
    both = log.read_stream("dossier-A", to_version=1, as_of=dt.datetime.now(dt.UTC))
    assert [e.version for e in both] == [1]


def test_read_stream_as_of_accepts_a_vietnam_local_time(log):
    result = log.append("dossier-A", 0, [probe(1)])
    recorded = _recorded_at(log, result.last_position)
    hanoi = recorded.astimezone(dt.timezone(dt.timedelta(hours=7)))
    assert [e.version for e in log.read_stream("dossier-A", as_of=hanoi)] == [1]


def test_read_all_in_batches_from_a_position(log):
    for i in range(7):
        log.append(f"dossier-{i % 3}", None, probes(i * 10, 3))
    everything = log.read_all(0, limit=1000)
    assert len(everything) == 21
    positions = [e.position for e in everything]
    assert positions == sorted(positions)
    batches, last = [], 0
    while batch := log.read_all(last, limit=4):
        assert len(batch) <= 4
        batches.append(batch)
        last = batch[-1].position
    assert [e.position for b in batches for e in b] == positions
    assert len(batches) == 6
    assert [e.position for e in log.read_all(positions[9], limit=3)] == positions[10:13]
    assert log.read_all(positions[-1]) == []
    assert [e.event_id for e in log.iter_all(positions[4], batch_size=2)] == [e.event_id for e in everything[5:]]
    assert log.head_position() == positions[-1]


def test_empty_log(log):
    assert log.read_all() == []
    assert list(log.iter_all()) == []
    assert log.head_position() == 0
    assert list(log.verify()) == []


def test_recorded_event_envelope_carries_what_consumers_need(log):
    log.append("dossier-A", 0, [probe(7)])
    event = log.read_all()[0]
    env = event.envelope()
    assert env["event_id"] == str(event.event_id)
    assert (env["event_type"], env["schema_version"], env["stream_version"]) == ("ServiceProbeRecorded", 1, 1)
    assert env["position"] == event.position and env["data"] == {"note": "probe 7", "sequence": 7}
    assert dt.datetime.fromisoformat(env["occurred_at"]) == event.occurred_at
