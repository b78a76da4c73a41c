"""The log is append-only in the database itself, and its hash chain exposes what a
superuser changes behind the trigger's back."""

from __future__ import annotations

import psycopg2
import pytest

from portal_common.eventstore import ChainBreak, event_hash, event_hash_v2
from portal_common.eventstore.store import GENESIS_HASH, is_append_only_violation
from tests.eventstore.conftest import count_rows, probe, probes

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {t} SET payload = '{{\"note\": \"forged\"}}' WHERE version = 1",
        "UPDATE {t} SET recorded_at = now()",
        "DELETE FROM {t} WHERE version = 2",
        "DELETE FROM {t}",
        "TRUNCATE {t}",
        "TRUNCATE {t} CASCADE",
    ],
)
def test_database_refuses_changes_to_the_log_even_from_the_superuser(log, superuser, statement):
    log.append("dossier-A", 0, probes(1, 3))
    with superuser.cursor() as cur, pytest.raises(psycopg2.Error) as caught:
        cur.execute(statement.format(t=f"{log.schema}.events"))
    assert caught.value.pgcode == "EV403"
    assert is_append_only_violation(caught.value)
    assert "append-only" in str(caught.value)
    assert count_rows(log) == 3
    assert [e.data["note"] for e in log.read_stream("dossier-A")] == ["probe 1", "probe 2", "probe 3"]


def test_refusal_also_holds_through_the_service_pool(log):
    log.append("dossier-A", 0, [probe(1)])
    with pytest.raises(psycopg2.Error) as caught, log.db.transaction() as cur:
        cur.execute("DELETE FROM events")  # the pool's search_path is the service schema
    assert is_append_only_violation(caught.value)
    assert count_rows(log) == 1


def test_migrating_again_keeps_the_log_and_its_guard(log, superuser):
    from portal_common.migrations import migrate

    log.append("dossier-A", 0, probes(1, 2))
    migrate(log.db.dsn, log.schema, create_database=False)
    assert count_rows(log) == 2
    with superuser.cursor() as cur, pytest.raises(psycopg2.Error) as caught:
        cur.execute(f"DELETE FROM {log.schema}.events")
    assert is_append_only_violation(caught.value)


# -- hash chain --------------------------------------------------------------------------

def _breaks(log, stream_id=None) -> list[ChainBreak]:
    return [item for item in log.verify(stream_id, batch_size=3) if isinstance(item, ChainBreak)]


def _checked(log, stream_id=None) -> list[int]:
    return [item for item in log.verify(stream_id, batch_size=3) if isinstance(item, int)]


def _fill(log) -> None:
    log.append("dossier-A", 0, probes(1, 3))
    log.append("dossier-B", 0, probes(10, 2))
    log.append("dossier-A", 3, probes(4, 2))


def _tamper(superuser, schema: str, sql: str, *args) -> None:
    """What an attacker with superuser rights does: switch the guard off, change, switch on."""
    with superuser.cursor() as cur:
        cur.execute(f"ALTER TABLE {schema}.events DISABLE TRIGGER events_append_only")
        try:
            cur.execute(sql.format(t=f"{schema}.events"), args)
        finally:
            cur.execute(f"ALTER TABLE {schema}.events ENABLE TRIGGER events_append_only")


def test_intact_log_verifies_and_each_event_links_to_its_predecessor(log):
    _fill(log)
    assert _breaks(log) == []
    assert _checked(log) == [e.position for e in log.read_all(0, 100)]
    assert _checked(log, "dossier-A") == [e.position for e in log.read_stream("dossier-A")]
    with log.db.transaction(dict_rows=False) as cur:
        cur.execute("SELECT version, prev_hash, hash FROM events WHERE stream_id = 'dossier-A' ORDER BY version")
        rows = [(v, bytes(p), bytes(h)) for v, p, h in cur.fetchall()]
    assert rows[0][1] == GENESIS_HASH
    assert all(rows[i][1] == rows[i - 1][2] for i in range(1, len(rows)))


def test_python_and_sql_hash_formulas_agree(log):
    """verify() recomputes in Python what append_events computed in SQL (both versions)."""
    log.append("dossier-Ư", 0, [probe(1, note="Giấy khai sinh bản chính\t\"trích lục\" \\ 📄")])
    with log.db.transaction(dict_rows=False) as cur:
        cur.execute("SELECT prev_hash, position, stream_id, stream_type, version, event_id, event_type, "
                    "schema_version, occurred_at, recorded_at, payload::text, metadata::text, hash, hash_version, "
                    "event_hash_v2(prev_hash, position, stream_id, stream_type, version, event_id, event_type, "
                    "schema_version, occurred_at, recorded_at, payload, metadata), "
                    "event_hash(prev_hash, stream_id, version, event_id, event_type, schema_version, "
                    "occurred_at, payload, metadata) FROM events")
        (prev, pos, sid, stype, version, event_id, etype, sversion, occurred, recorded, ptext, mtext,
         stored, hash_version, sql_v2, sql_v1) = cur.fetchone()
    assert hash_version == 2
    assert event_hash_v2(bytes(prev), pos, sid, stype, version, event_id, etype, sversion, occurred, recorded,
                         ptext, mtext) == bytes(stored) == bytes(sql_v2)
    assert event_hash(bytes(prev), sid, version, event_id, etype, sversion, occurred, ptext, mtext) == bytes(sql_v1)


def test_payload_tampered_by_the_superuser_is_detected(log, superuser):
    _fill(log)
    target = log.read_stream("dossier-A")[1]
    _tamper(superuser, log.schema, "UPDATE {t} SET payload = '{{\"note\": \"forged\", \"sequence\": 2}}' "
            "WHERE position = %s", target.position)
    assert log.read_stream("dossier-A")[1].data["note"] == "forged"  # the change went through ...
    breaks = _breaks(log)  # ... and the chain shows it
    assert [(b.stream_id, b.version, b.position, b.reason) for b in breaks] == [
        ("dossier-A", 2, target.position, "content does not match its hash")]
    assert _breaks(log, "dossier-B") == []


@pytest.mark.parametrize("column_sql", [
    "metadata = jsonb_set(metadata, '{{actor,id}}', '\"someone-else\"')",
    "occurred_at = occurred_at - interval '1 day'",
    "recorded_at = recorded_at - interval '1 hour'",
    "stream_type = 'agency'",
    "event_type = 'ServiceProbeRecorded' || ''",  # same value: must NOT be reported
])
def test_other_columns_are_covered_by_the_hash(log, superuser, column_sql):
    _fill(log)
    target = log.read_stream("dossier-B")[0]
    _tamper(superuser, log.schema, "UPDATE {t} SET " + column_sql + " WHERE position = %s", target.position)
    breaks = _breaks(log)
    if "|| ''" in column_sql:
        assert breaks == []
    else:
        assert [(b.stream_id, b.version) for b in breaks] == [("dossier-B", 1)]


def test_reordering_the_global_log_is_detected(log, superuser):
    """Swapping two events' positions (what a follower replays first) breaks both hashes."""
    _fill(log)
    a, b = log.read_stream("dossier-A")[0], log.read_stream("dossier-B")[0]
    for old, new in ((a.position, -1), (b.position, a.position), (-1, b.position)):
        _tamper(superuser, log.schema, "UPDATE {t} SET position = %s WHERE position = %s", new, old)
    assert {(x.stream_id, x.version) for x in _breaks(log)} >= {("dossier-A", 1), ("dossier-B", 1)}


def test_logs_written_with_the_first_hash_formula_still_verify(log, superuser):
    """Rows of hash version 1 (logs from before version 2) verify with their own formula,
    and tampering with them is still detected."""
    with superuser.cursor() as cur:
        prev = GENESIS_HASH
        for version in (1, 2):
            cur.execute(
                f"INSERT INTO {log.schema}.events (position, stream_id, stream_type, version, event_id, "
                "event_type, schema_version, payload, metadata, occurred_at, prev_hash, hash_version, hash) "
                f"SELECT nextval('{log.schema}.event_position_seq'), 'dossier-old', 'dossier', %(v)s, e, "
                "'ServiceProbeRecorded', 1, %(p)s, '{}', now(), %(prev)s, 1, "
                f"{log.schema}.event_hash(%(prev)s, 'dossier-old', %(v)s, e, 'ServiceProbeRecorded', 1, now(), "
                "%(p)s, '{}') FROM gen_random_uuid() AS e RETURNING hash",
                {"v": version, "p": '{"note": "old"}', "prev": prev})
            prev = bytes(cur.fetchone()[0])
    log.append("dossier-old", 2, [probe(3)])  # the stream goes on with version-2 rows
    assert _breaks(log) == []
    _tamper(superuser, log.schema, "UPDATE {t} SET payload = '{{\"note\": \"new\"}}' WHERE version = 1")
    assert [(b.version, b.reason) for b in _breaks(log)] == [(1, "content does not match its hash")]


def test_tamper_with_recomputed_hash_breaks_the_next_link(log, superuser):
    """A careful attacker also recomputes the row's hash: the next event's link then breaks."""
    _fill(log)
    target = log.read_stream("dossier-A")[2]
    _tamper(superuser, log.schema,
            "UPDATE {t} SET payload = '{{\"note\": \"forged\", \"sequence\": 3}}' WHERE position = %s",
            target.position)
    _tamper(superuser, log.schema,
            "UPDATE {t} SET hash = event_hash_v2(prev_hash, position, stream_id, stream_type, version, event_id, "
            "event_type, schema_version, occurred_at, recorded_at, payload, metadata) WHERE position = %s",
            target.position)
    breaks = _breaks(log)
    assert [(b.version, b.reason) for b in breaks] == [(4, "link to the previous event is broken")]


def test_deleted_event_is_detected(log, superuser):
    _fill(log)
    target = log.read_stream("dossier-A")[1]
    _tamper(superuser, log.schema, "DELETE FROM {t} WHERE position = %s", target.position)
    reasons = {(b.version, b.reason) for b in _breaks(log, "dossier-A")}
    assert (3, "version 3 follows 1") in reasons
    assert (3, "link to the previous event is broken") in reasons


def test_inserted_event_bypassing_append_is_detected(log, superuser):
    """A row written straight into the table (not through append_events) with a made-up hash."""
    _fill(log)
    with superuser.cursor() as cur:
        cur.execute(
            f"INSERT INTO {log.schema}.events (position, stream_id, stream_type, version, event_id, event_type, "
            "schema_version, payload, metadata, occurred_at, prev_hash, hash) "
            f"VALUES (nextval('{log.schema}.event_position_seq'), 'dossier-B', 'dossier', 3, gen_random_uuid(), "
            "'ServiceProbeRecorded', 1, '{\"note\": \"injected\"}', '{}', now(), "
            "'\\x00'::bytea, '\\x00'::bytea)")
    reasons = [b.reason for b in _breaks(log, "dossier-B")]
    assert "link to the previous event is broken" in reasons
    assert "content does not match its hash" in reasons
