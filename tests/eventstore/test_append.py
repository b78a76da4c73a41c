"""Appending: optimistic concurrency, atomic multi-event commits, schema refusal."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from portal_common.contracts import CATALOGUE
from portal_common.eventstore import (
    Actor,
    ConcurrencyError,
    DuplicateEventError,
    EventContext,
    EventSchemaError,
    NewEvent,
)
from tests.eventstore.conftest import PROBE, count_rows, probe, probes
from tests.support.threads import all_at_once

pytestmark = pytest.mark.integration


def test_append_records_versions_positions_and_metadata(log):
    ctx = EventContext(actor=Actor("citizen", "079203001234"), correlation_id="corr-1", causation_id="cmd-1")
    first = log.append("dossier-A", 0, probes(1, 2), context=ctx)
    second = log.append("dossier-A", 2, [probe(3)])
    assert (first.version, second.version) == (2, 3)
    assert second.first_position > first.last_position
    events = log.read_stream("dossier-A")
    assert [e.version for e in events] == [1, 2, 3]
    assert [e.data["sequence"] for e in events] == [1, 2, 3]
    assert events[0].stream_type == "dossier"
    assert events[0].metadata["correlation_id"] == "corr-1"
    assert events[0].metadata["causation_id"] == "cmd-1"
    assert events[0].actor == {"kind": "citizen", "id": "079203001234", "agency_code": None}
    assert events[2].actor["kind"] == "system"
    assert log.stream_version("dossier-A") == 3
    assert log.stream_version("dossier-unknown") == 0


def test_stale_expected_version_raises_typed_error_and_writes_nothing(log):
    log.append("dossier-B", 0, probes(1, 2))
    before = count_rows(log)
    with pytest.raises(ConcurrencyError) as caught:
        log.append("dossier-B", 1, probes(10, 3))
    assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == ("dossier-B", 1, 2)
    assert count_rows(log) == before
    assert [e.data["sequence"] for e in log.read_stream("dossier-B")] == [1, 2]


@pytest.mark.parametrize("expected", [0, 5])
def test_expected_version_that_does_not_match_is_refused_both_ways(log, expected):
    log.append("dossier-C", 0, probes(1, 2))
    with pytest.raises(ConcurrencyError) as caught:
        log.append("dossier-C", expected, [probe(9)])
    assert caught.value.actual == 2
    assert log.stream_version("dossier-C") == 2


def test_none_expected_version_appends_without_check(log):
    log.append("dossier-D", None, [probe(1)])
    log.append("dossier-D", None, [probe(2)])
    assert [e.version for e in log.read_stream("dossier-D")] == [1, 2]


def test_racing_writers_on_one_stream_exactly_one_wins(log):
    """Two commands read version 1 and both append: one commits, the other gets the error."""
    log.append("dossier-E", 0, [probe(0)])
    results, errors = all_at_once(lambda i: log.append("dossier-E", 1, [probe(i)]), 4)
    assert len(results) == 1 and [type(e) for e in errors] == [ConcurrencyError] * 3
    assert [e.version for e in log.read_stream("dossier-E")] == [1, 2]


def test_multi_event_append_is_atomic_when_a_later_event_is_malformed(log):
    good, bad = probe(1), NewEvent(PROBE, {"note": "x" * 501})
    with pytest.raises(EventSchemaError):
        log.append("dossier-F", 0, [good, probe(2), bad])
    assert count_rows(log) == 0
    assert log.stream_version("dossier-F") == 0


def test_multi_event_append_is_atomic_when_the_database_refuses_one(log):
    """The third event reuses the first one's id: the database refuses it, and the two
    before it in the same append are rolled back with it."""
    first = probe(1)
    clone = NewEvent(PROBE, {"note": "clone", "sequence": 3}, event_id=first.event_id)
    with pytest.raises(DuplicateEventError) as caught:
        log.append("dossier-G", 0, [first, probe(2), clone])
    assert caught.value.event_id == str(first.event_id)
    assert count_rows(log) == 0
    result = log.append("dossier-G", 0, [first, probe(2)])
    assert (result.version, result.last_position - result.first_position) == (2, 1)


def test_retried_append_of_a_recorded_event_is_a_duplicate_not_a_new_row(log):
    event = probe(1)
    log.append("dossier-H", None, [event])
    with pytest.raises(DuplicateEventError):
        log.append("dossier-H", None, [event])
    with pytest.raises(ConcurrencyError):  # still a ConcurrencyError for callers that retry
        log.append("dossier-H", None, [event])
    assert count_rows(log) == 1


def test_append_in_callers_transaction_commits_and_rolls_back_with_it(log):
    with log.db.transaction(dict_rows=False) as cur:
        log.append("dossier-I", 0, [probe(1)], cursor=cur)
    assert log.stream_version("dossier-I") == 1
    with pytest.raises(RuntimeError), log.db.transaction(dict_rows=False) as cur:
        log.append("dossier-I", 1, [probe(2)], cursor=cur)
        raise RuntimeError("the command failed after appending")
    assert log.stream_version("dossier-I") == 1
    assert count_rows(log) == 1


def test_ten_events_in_one_append_get_consecutive_versions_and_positions(log):
    result = log.append("dossier-J", 0, probes(0, 10))
    events = log.read_stream("dossier-J")
    assert [e.version for e in events] == list(range(1, 11))
    assert [e.position for e in events] == list(range(result.first_position, result.last_position + 1))


def test_empty_append_is_refused(log):
    with pytest.raises(ValueError):
        log.append("dossier-K", 0, [])


# -- schema refusal ----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("event", "why"),
    [
        (NewEvent(PROBE, {}), "missing field"),
        (NewEvent(PROBE, {"note": 42}), "wrong type"),
        (NewEvent(PROBE, {"note": "x" * 10_000}), "10 kB string"),
        (NewEvent(PROBE, {"note": "ok", "sequence": "many"}), "wrong type"),
        (NewEvent(PROBE, {"note": "ok", "unexpected": 1}), "unknown field"),
        (NewEvent(PROBE, ["not", "an", "object"]), "payload not an object"),
        (NewEvent("DossierTeleported", {"note": "x"}), "unknown event type"),
        (NewEvent(PROBE, {"note": "ok"}, schema_version=99), "unknown version"),
    ],
)
def test_malformed_event_is_refused_and_nothing_is_written(log, event, why):
    with pytest.raises(EventSchemaError) as caught:
        log.append("dossier-S", 0, [event])
    assert caught.value.event_type == event.event_type, why
    assert count_rows(log) == 0


def test_value_json_cannot_carry_is_refused_as_schema_error(log):
    """A payload that passes the schema but cannot be stored as JSON (NaN) is refused too."""
    with pytest.raises(EventSchemaError):
        log.append("dossier-T", 0, [NewEvent(PROBE, {"note": "ok", "sequence": 1},
                                             occurred_at=dt.datetime.now(dt.UTC))],
                   context=EventContext(extra={"score": float("nan")}))
    assert count_rows(log) == 0


def test_every_catalogued_event_type_has_a_schema_that_refuses_an_empty_payload_or_accepts_it_knowingly():
    """The catalogue is the one list of published events: each has a version and a schema."""
    contracts = list(CATALOGUE)
    assert contracts, "the catalogue lists no events"
    for contract in contracts:
        assert contract.version >= 1
        assert contract.exchange == f"{contract.producer}.events"
        assert contract.event_type[0].isupper() and contract.event_type.isidentifier()
    assert PROBE in CATALOGUE


def test_nul_character_is_refused_as_bad_data_not_a_server_error(log):
    """jsonb cannot hold U+0000: the store refuses it as a schema error, writing nothing."""
    with pytest.raises(EventSchemaError):
        log.append("dossier-U", 0, [NewEvent(PROBE, {"note": "Đăng ký\u0000khai sinh", "sequence": 1})])
    assert count_rows(log) == 0


def test_control_characters_unicode_and_escaped_backslashes_round_trip(log):
    note = "Đăng ký khai sinh\t\n\x1f\\u0000 \U0001f4c4"  # a literal backslash + "u0000" is fine
    log.append("dossier-U", 0, [NewEvent(PROBE, {"note": note, "sequence": 1})])
    assert log.read_stream("dossier-U")[0].data["note"] == note


def test_stream_ids_are_data_not_sql(log):
    hostile = "dossier-'; DROP TABLE events; --" + uuid.uuid4().hex
    log.append(hostile, 0, [probe(1)])
    assert log.stream_version(hostile) == 1
    assert count_rows(log) == 1
