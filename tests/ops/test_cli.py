"""``portal-ops`` against the real database and broker: verify (and catch tampering), outbox
backlog, replay to a subscriber's queue, export of one dossier, rebuild, and the router's
dead letters and redelivery through the running system."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kombu import Connection, Queue

from portal_common.eventstore import EventStore
from portal_common.eventstore.events import EventContext, NewEvent
from portal_common.migrations import migrate
from portal_common.ops import Progress, main
from tests.dossier.conftest import _repository, submit

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _probes(db, n: int, stream: str | None = None) -> list[int]:
    store = EventStore(db)
    positions = []
    for i in range(n):
        result = store.append(stream or f"probe-{uuid.uuid4().hex[:8]}", None,
                              [NewEvent("ServiceProbeRecorded", {"note": f"probe {i}", "sequence": i})],
                              stream_type="probe", context=EventContext(correlation_id=f"rid-{i}"))
        positions.append(result.last_position)
    return positions


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_verify_passes_an_intact_log_and_names_a_tampered_event(fresh_schema, database_url, capsys):
    db = fresh_schema("ops")
    positions = _probes(db, 5, stream="probe-chain") + _probes(db, 3)
    code, out, err = _run(capsys, "verify", "--database-url", database_url, "--schema", db.schema, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["intact"] is True and report["logs"][0]["checked"] == 8
    assert "verify " + db.schema in err and "100.0%" in err  # the progress bar reached the head
    with db.transaction() as cur:  # tamper the way only a superuser could
        cur.execute(f"ALTER TABLE {db.schema}.events DISABLE TRIGGER events_append_only")
        cur.execute(f"UPDATE {db.schema}.events SET payload = jsonb_set(payload, '{{note}}', '\"forged\"') "
                    "WHERE position = %s", (positions[2],))
        cur.execute(f"ALTER TABLE {db.schema}.events ENABLE TRIGGER events_append_only")
    code, out, _ = _run(capsys, "verify", "--database-url", database_url, "--schema", db.schema)
    assert code == 1
    assert f"position {positions[2]} stream probe-chain v3: content does not match its hash" in out
    code, out, _ = _run(capsys, "verify", "--database-url", database_url, "--schema", db.schema,
                        "--stream", "probe-chain", "--json")
    assert code == 1 and json.loads(out)["logs"][0]["checked"] == 5


def test_outbox_shows_backlog_and_age(fresh_schema, database_url, capsys):
    db = fresh_schema("ops")
    positions = _probes(db, 4)
    code, out, _ = _run(capsys, "outbox", "--database-url", database_url, "--schema", db.schema, "--json")
    assert code == 0
    [row] = json.loads(out)
    assert row["backlog"] == 4 and row["head"] == positions[-1] and row["checkpoint"] == 0
    assert row["oldest_unpublished_s"] is not None and row["oldest_unpublished_s"] >= 0
    with db.transaction() as cur:
        cur.execute(f"INSERT INTO {db.schema}.outbox_checkpoints (relay, position) VALUES ('amqp', %s)",
                    (positions[-1],))
    code, out, _ = _run(capsys, "outbox", "--database-url", database_url, "--schema", db.schema)
    assert code == 0
    line = next(li for li in out.splitlines() if li.startswith(db.schema))
    assert line.split()[1:4] == [str(positions[-1]), str(positions[-1]), "0"]


def test_replay_sends_events_from_a_position_to_a_queue(fresh_schema, database_url, amqp_uri, capsys):
    db = fresh_schema("ops")
    positions = _probes(db, 6)
    queue = f"ops-replay-{uuid.uuid4().hex[:8]}"
    with Connection(amqp_uri) as conn:
        Queue(queue, durable=False, auto_delete=False)(conn.channel()).declare()
        try:
            code, _, err = _run(capsys, "replay", "--database-url", database_url, "--amqp-uri", amqp_uri,
                                "--schema", db.schema, "--queue", queue, "--from-position", str(positions[3]))
            assert code == 2 and "--event-type" in err  # a plain queue needs its types named
            code, out, err = _run(capsys, "replay", "--database-url", database_url, "--amqp-uri", amqp_uri,
                                  "--schema", db.schema, "--queue", queue, "--from-position", str(positions[3]),
                                  "-t", "ServiceProbeRecorded")
            assert code == 0 and "sent 3 events" in out and "replay" in err
            received = []
            simple = conn.SimpleQueue(queue, no_ack=True, queue_opts={"durable": False, "auto_delete": False})
            while True:
                try:
                    message = simple.get(timeout=2)
                except simple.Empty:
                    break
                received.append(message)
            simple.close()
            assert [m.payload["position"] for m in received] == positions[3:]
            first = received[0]
            assert first.payload["event_type"] == "ServiceProbeRecorded"
            assert first.payload["data"] == {"note": "probe 3", "sequence": 3}
            assert first.payload["correlation_id"] == "rid-3"
            assert first.headers["replayed"] is True and first.properties["message_id"] == first.payload["event_id"]
            code, _, err = _run(capsys, "replay", "--database-url", database_url, "--amqp-uri", amqp_uri,
                                "--schema", db.schema, "--queue", "no-such-queue-" + queue,
                                "--from-position", "1", "--all-types")
            assert code == 1 and "no queue named" in err
        finally:
            with Connection(amqp_uri) as fresh:  # a channel no consumer of the queue ever used
                Queue(queue)(fresh.channel()).delete()


def test_replay_to_a_nameko_handler_queue_sends_only_its_event_type(fresh_schema, database_url, amqp_uri, capsys):
    db = fresh_schema("ops")
    _probes(db, 2)
    queue = f"evt-{db.schema}-DossierSubmitted--ops.on_submitted_{uuid.uuid4().hex[:6]}"
    with Connection(amqp_uri) as conn:
        Queue(queue, durable=False)(conn.channel()).declare()
        try:
            code, out, _ = _run(capsys, "replay", "--database-url", database_url, "--amqp-uri", amqp_uri,
                                "--schema", db.schema, "--queue", queue, "--from-position", "1")
            assert code == 0 and "sent 0 events" in out  # probes are not DossierSubmitted
        finally:
            Queue(queue)(conn.channel()).delete()


def test_export_writes_a_dossiers_full_history(database_url, tmp_path, capsys):
    repo = _repository(database_url)
    try:
        state, _ = submit(repo, owner="acc-export")
        code, _, err = _run(capsys, "export", state.code, "--database-url", database_url, "--schema",
                            repo.repository.db.schema, "--output", str(tmp_path / "h.json"))
        assert code == 0 and f"of {state.code}" in err
        data = json.loads((tmp_path / "h.json").read_text())
        assert data["code"] == state.code
        assert data["view"]["status"] == state.status
        assert [e["event_type"] for e in data["events"]] == ["DossierSubmitted"]
        assert data["events"][0]["actor"]["id"] == "acc-export"
        assert len(data["events"][0]["hash"]) == 64
        assert data["chain"]["intact"] is True
        assert len(data["documents"]) == 1 and len(data["documents"][0]["sha256"]) == 64
        code, _, err = _run(capsys, "export", "NOPE-010101-0001", "--database-url", database_url,
                            "--schema", repo.repository.db.schema)
        assert code == 1 and "dossier_not_found" in err
        code, _, err = _run(capsys, "export", "not a code", "--database-url", database_url)
        assert code == 1 and "dossier_not_found" in err
    finally:
        repo.repository.db.close()


def test_rebuild_is_the_dossier_services_command(database_url, capsys):
    repo = _repository(database_url)
    try:
        for i in range(3):
            submit(repo, owner=f"acc-r{i}")
        with repo.repository.db.transaction() as cur:
            cur.execute("DELETE FROM dossier_status")
        code, out, _ = _run(capsys, "rebuild", "--database-url", database_url, "--schema", repo.repository.db.schema)
        assert code == 0 and "3 dossiers" in out
        with repo.repository.db.transaction() as cur:
            cur.execute("SELECT count(*) AS n FROM dossier_status")
            assert cur.fetchone()["n"] == 3
    finally:
        repo.repository.db.close()


def test_dead_letters_and_redeliver_through_the_running_router(system, migrated_database, amqp_uri, capsys):
    from portal_common.db import Database

    delivery = str(uuid.uuid4())
    db = Database(migrated_database, "router", size=1)
    try:
        with db.transaction() as cur:
            cur.execute(
                "INSERT INTO deliveries (delivery_id, dossier_code, agency_code, addressed_to, event_id, event_type, "
                "channel, body, status, attempts, last_error) VALUES (%s, 'OPS-260101-0001', 'OPS.TEST', "
                "'OPS.TEST', %s, 'DossierSubmitted', 'amqp', '{}'::jsonb, 'dead', 8, 'connection refused')",
                (delivery, str(uuid.uuid4())))
        code, out, _ = _run(capsys, "dead-letters", "--amqp-uri", amqp_uri, "--agency", "OPS.TEST", "--json")
        assert code == 0
        assert [r["delivery_id"] for r in json.loads(out)] == [delivery]
        code, out, _ = _run(capsys, "redeliver", delivery, "--amqp-uri", amqp_uri, "--json")
        assert code == 0
        with db.transaction() as cur:
            cur.execute("SELECT status, attempts FROM deliveries WHERE delivery_id = %s", (delivery,))
            row = cur.fetchone()
        assert row["status"] != "dead"
        code, out, _ = _run(capsys, "dead-letters", "--amqp-uri", amqp_uri, "--agency", "OPS.TEST", "--json")
        assert delivery not in out
        code, _, err = _run(capsys, "redeliver", "--amqp-uri", amqp_uri)
        assert code == 2 and "--all" in err
    finally:
        db.close()


def test_progress_bar_draws_on_its_stream():
    import io

    stream = io.StringIO()
    bar = Progress("work", total=10, stream=stream, every_s=0)
    for _ in range(10):
        bar.advance()
    bar.close()
    assert "[" + "#" * 30 + "]" in stream.getvalue() and "10/10" in stream.getvalue()


def test_installed_entry_point_runs(database_url):
    schema = f"ops_{uuid.uuid4().hex[:8]}"
    migrate(database_url, schema, create_database=False)
    proc = subprocess.run([sys.executable, "-m", "portal_common.ops", "outbox", "--database-url", database_url,
                           "-s", schema, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["backlog"] == 0
    assert "Eventlet is deprecated" not in proc.stderr
