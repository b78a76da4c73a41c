"""One contract, two event logs: PostgreSQL ``EventStore`` and ``MemoryEventStore``.

Every test runs on both implementations of ``portal_common.eventstore.port.EventLog`` (as the
``eventsourcing`` library runs one suite on each of its recorders), so the application layer
can rely on the same guarantees whichever one it is given.
"""

from __future__ import annotations

import datetime as dt
import uuid
from contextlib import contextmanager

import pytest

from portal_common.eventstore import (
    Actor,
    ConcurrencyError,
    DuplicateEventError,
    EventContext,
    EventLog,
    EventSchemaError,
    EventStore,
    MemoryEventStore,
    NewEvent,
)
from tests.eventstore.conftest import PROBE, probe, probes
from tests.support.threads import all_at_once


@pytest.fixture(params=["postgresql", "memory"])
def log(request) -> EventLog:
    if request.param == "memory":
        return MemoryEventStore()
    return EventStore(request.getfixturevalue("fresh_schema")("port"))


@contextmanager
def transaction(log):
    """A transaction of the log's own kind; appends passed its handle commit with it."""
    if isinstance(log, MemoryEventStore):
        with log.transaction() as tx:
            yield tx
    else:
        with log.db.transaction(dict_rows=False) as cur:
            yield cur


def test_both_implement_the_port(log):
    assert isinstance(log, EventLog)


def test_versions_positions_and_metadata(log):
    ctx = EventContext(actor=Actor("citizen", "079203001234"), correlation_id="corr-1", causation_id="cmd-1")
    first = log.append("dossier-A", 0, probes(1, 2), context=ctx)
    second = log.append("dossier-A", 2, [probe(3)])
    assert (first.version, second.version) == (2, 3)
    assert first.last_position == first.first_position + 1
    assert second.first_position > first.last_position
    events = log.read_stream("dossier-A")
    assert [e.version for e in events] == [1, 2, 3]
    assert [e.data["sequence"] for e in events] == [1, 2, 3]
    assert events[0].stream_type == "dossier" and events[0].schema_version == 1
    assert events[0].metadata == {"actor": {"kind": "citizen", "id": "079203001234", "agency_code": None},
                                  "correlation_id": "corr-1", "causation_id": "cmd-1"}
    assert events[2].actor == {"kind": "system", "id": "system", "agency_code": None}
    assert log.stream_version("dossier-A") == 3 and log.stream_version("dossier-none") == 0
    assert log.head_position() == events[-1].position


def test_envelope_shape(log):
    new = probe(1)
    log.append("svc-E", 0, [new], stream_type="svc", context=EventContext(correlation_id="c"))
    envelope = log.read_stream("svc-E")[0].envelope()
    assert set(envelope) == {"event_id", "event_type", "schema_version", "stream_id", "stream_type",
                             "stream_version", "position", "occurred_at", "recorded_at", "correlation_id",
                             "causation_id", "actor", "data"}
    assert envelope["event_id"] == str(new.event_id) and envelope["stream_type"] == "svc"
    assert envelope["correlation_id"] == "c" and envelope["data"] == {"note": "probe 1", "sequence": 1}
    assert dt.datetime.fromisoformat(envelope["occurred_at"]) == new.occurred_at


@pytest.mark.parametrize("expected", [0, 1, 5])
def test_a_stale_expected_version_raises_and_writes_nothing(log, expected):
    log.append("dossier-B", 0, probes(1, 2))
    head = log.head_position()
    with pytest.raises(ConcurrencyError) as caught:
        log.append("dossier-B", expected, probes(10, 3))
    assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == ("dossier-B", expected, 2)
    assert log.head_position() == head
    assert [e.data["sequence"] for e in log.read_stream("dossier-B")] == [1, 2]


def test_no_expected_version_skips_the_check(log):
    log.append("dossier-C", None, [probe(1)])
    assert log.append("dossier-C", None, [probe(2)]).version == 2


def test_a_multi_event_append_is_all_or_nothing(log):
    bad = NewEvent(PROBE, {"note": 42, "sequence": "x"})
    with pytest.raises(EventSchemaError):
        log.append("dossier-D", 0, [probe(1), bad, probe(3)])
    with pytest.raises(EventSchemaError):
        log.append("dossier-D", 0, [probe(1), NewEvent(PROBE, {"note": "a\u0000b", "sequence": 1})])
    assert log.read_stream("dossier-D") == [] and log.head_position() == 0


def test_an_event_id_is_recorded_once(log):
    event = probe(1)
    log.append("dossier-F", 0, [event])
    with pytest.raises(DuplicateEventError) as caught:
        log.append("dossier-G", 0, [event])
    assert isinstance(caught.value, ConcurrencyError)
    assert log.read_stream("dossier-G") == []


def test_reads_to_a_version_and_as_of_a_time(log):
    log.append("dossier-H", 0, probes(1, 2))
    between = log.read_stream("dossier-H")[-1].recorded_at
    log.append("dossier-H", 2, probes(3, 2))
    assert [e.version for e in log.read_stream("dossier-H", to_version=3)] == [1, 2, 3]
    assert [e.version for e in log.read_stream("dossier-H", as_of=between)] == [1, 2]
    assert log.read_stream("dossier-H", as_of=between - dt.timedelta(days=1)) == []


def test_read_all_follows_positions_in_order(log):
    for i in range(5):
        log.append(f"dossier-{i}", 0, probes(i * 10, 2))
    everything = log.read_all()
    positions = [e.position for e in everything]
    assert positions == sorted(positions) and len(positions) == 10
    assert [e.position for e in log.read_all(positions[3], limit=4)] == positions[4:8]
    assert [e.position for e in log.iter_all(positions[1], batch_size=3)] == positions[2:]


def test_appends_in_a_transaction_commit_together(log):
    with transaction(log) as tx:
        log.append("dossier-T1", 0, [probe(1)], cursor=tx)
        log.append("dossier-T2", 0, probes(2, 2), cursor=tx)
        assert log.stream_version("dossier-T2", cursor=tx) == 2
        assert [e.version for e in log.read_stream("dossier-T2", cursor=tx)] == [1, 2]
    assert [len(log.read_stream(s)) for s in ("dossier-T1", "dossier-T2")] == [1, 2]
    positions = [e.position for e in log.read_all()]
    assert positions == sorted(positions) and len(positions) == 3


def test_a_transaction_that_fails_writes_nothing(log):
    log.append("dossier-R", 0, [probe(0)])
    with pytest.raises(ConcurrencyError), transaction(log) as tx:
        log.append("dossier-R2", 0, [probe(1)], cursor=tx)
        log.append("dossier-R", 0, [probe(2)], cursor=tx)  # stale: the whole transaction rolls back
    with pytest.raises(RuntimeError), transaction(log) as tx:
        log.append("dossier-R3", 0, [probe(3)], cursor=tx)
        raise RuntimeError("the command failed after its append")
    assert log.read_stream("dossier-R2") == [] and log.read_stream("dossier-R3") == []
    assert log.stream_version("dossier-R") == 1


def test_an_append_that_lost_a_race_raises_in_its_transaction(log):
    """The optimistic-concurrency case a command's retry loop handles: read, someone else
    appends, then the command appends with the version it read."""
    log.append("dossier-S", 0, [probe(1)])
    with pytest.raises(ConcurrencyError), transaction(log) as tx:
        read = log.stream_version("dossier-S", cursor=tx)
        log.append("dossier-S", read, [probe(2)])  # another writer, committed on its own
        log.append("dossier-S", read, [probe(3)], cursor=tx)
    assert [e.data["sequence"] for e in log.read_stream("dossier-S")] == [1, 2]


def test_concurrent_writers_at_one_version_one_wins(log):
    stream = f"dossier-{uuid.uuid4().hex[:8]}"
    log.append(stream, 0, [probe(0)])
    results, errors = all_at_once(lambda n: log.append(stream, 1, probes(n * 10, 2)), 6)
    assert len(results) == 1 and [type(e) for e in errors] == [ConcurrencyError] * 5
    assert [e.version for e in log.read_stream(stream)] == [1, 2, 3]


def test_an_empty_append_is_refused(log):
    with pytest.raises(ValueError):
        log.append("dossier-X", 0, [])
