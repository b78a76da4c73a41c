"""A request id follows a request everywhere: the response, the RPC call, the event's
metadata (correlation id) and the JSON log lines of the gateway and of the service, which
also name the dossier they are about."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests

from portal_common.db import Database
from tests.support import accounts
from tests.support.filings import first_office_filing

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

PROCEDURE = "1.001193"


def _log_lines(system, name: str) -> list[dict]:
    out = []
    for line in (system.log_dir / f"{name}.log").read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def _eventually_logged(system, name: str, rid: str, predicate) -> list[dict]:
    """The lines of ``rid`` once one matches (a service logs a call just after answering it)."""
    deadline = time.monotonic() + 20
    while True:
        lines = [e for e in _log_lines(system, name) if e.get("request_id") == rid]
        if any(predicate(e) for e in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


def _filing(gateway_url: str) -> dict:
    return first_office_filing(gateway_url, PROCEDURE, "Trần Văn Vết")


def test_request_id_reaches_event_metadata_and_every_log_line(system, gateway_url, migrated_database):
    token = accounts.register_citizen(gateway_url)["access_token"]
    rid = f"trace-{uuid.uuid4().hex}"
    resp = requests.post(f"{gateway_url}/api/v1/dossiers", json=_filing(gateway_url), timeout=30,
                         headers={"Authorization": f"Bearer {token}", "X-Request-ID": rid,
                                  "Idempotency-Key": uuid.uuid4().hex})
    assert resp.status_code == 201, resp.text
    assert resp.headers["X-Request-ID"] == rid
    code = resp.json()["code"]

    db = Database(migrated_database, "dossier", size=1)
    try:
        with db.transaction() as cur:
            cur.execute("SELECT event_type, metadata FROM events WHERE stream_id = %s ORDER BY version",
                        (f"dossier-{code}",))
            rows = cur.fetchall()
    finally:
        db.close()
    assert rows and rows[0]["event_type"] == "DossierSubmitted"
    assert rows[0]["metadata"]["correlation_id"] == rid

    # a follow-up read with its own id: the dossier service's line names the dossier
    rid2 = f"trace-{uuid.uuid4().hex}"
    assert requests.get(f"{gateway_url}/api/v1/dossiers/{code}", timeout=30, headers={
        "Authorization": f"Bearer {token}", "X-Request-ID": rid2}).status_code == 200

    # the gateway writes its access line once the answer has gone out: wait for it too
    gateway_lines = _eventually_logged(system, "gateway", rid, lambda e: e.get("status") == 201)
    assert any(e.get("status") == 201 and e.get("route") == "/api/v1/dossiers" for e in gateway_lines), gateway_lines
    assert all(e["service"] == "gateway" for e in gateway_lines)
    dossier_lines = _eventually_logged(system, "dossier", rid, lambda e: e.get("method") == "submit")
    assert any(e.get("method") == "submit" and e.get("outcome") == "ok" for e in dossier_lines), dossier_lines
    assert all(e["service"] == "dossier" and e["level"] in ("info", "warning", "error") for e in dossier_lines)
    read_lines = _eventually_logged(system, "dossier", rid2, lambda e: e.get("method") == "get")
    assert any(e.get("method") == "get" and e.get("dossier_code") == code for e in read_lines), read_lines
    gateway_read = _eventually_logged(system, "gateway", rid2, lambda e: e.get("dossier_code") == code)
    assert any(e.get("dossier_code") == code for e in gateway_read), gateway_read


def test_a_refusal_is_logged_with_the_request_id(system, gateway_url):
    rid = f"trace-{uuid.uuid4().hex}"
    resp = requests.get(f"{gateway_url}/api/v1/lookup/HS-000000-0404", headers={"X-Request-ID": rid}, timeout=30)
    assert resp.status_code == 404 and resp.json()["request_id"] == rid
    lines = _eventually_logged(system, "dossier", rid, lambda e: e.get("method") == "lookup")
    assert any(e.get("method") == "lookup" and e.get("outcome") == "refused" for e in lines), lines
