"""The dossier service running in the whole system (real RabbitMQ + PostgreSQL), over RPC and HTTP.

Dossiers are seeded through the service's own repository on the system's database; every
read and command then goes through the running service (RPC) or the gateway (HTTP).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from portal_common.db import Database
from portal_common.errors import Conflict, InvalidInput, NotFound
from portal_common.eventstore import EventStore
from services.dossier.application import on_postgres
from tests.dossier.conftest import PDF, submit

AGENCY = "RPC.01"


@pytest.fixture(scope="module")
def cluster(system, amqp_uri):
    with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=20) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def live_repo(system, migrated_database):
    db = Database(migrated_database, "dossier", size=4)
    yield on_postgres(db, EventStore(db))
    db.close()


def ctx(kind: str, account: str, agency: str | None = None) -> dict:
    return {"request_id": uuid.uuid4().hex, "client_ip": "127.0.0.1",
            "actor": {"kind": kind, "id": account, "agency_code": agency, "subject": "001090000001"}}


def citizen(account: str) -> dict:
    return ctx("citizen", account)


def officer(agency: str = AGENCY) -> dict:
    return ctx("officer", f"officer-{agency}", agency)


def seed(live_repo, owner: str) -> str:
    state, _ = submit(live_repo, owner=owner, agency=AGENCY, content=PDF + owner.encode())
    return state.code


def test_full_view_lifecycle_and_access_control_over_rpc(cluster, live_repo):
    owner = f"acc-{uuid.uuid4().hex[:8]}"
    code = seed(live_repo, owner)
    view = cluster.dossier.get(citizen(owner), code)
    assert view["status"] == "submitted" and view["timeline"][0]["event"] == "DossierSubmitted"
    # another citizen, another agency, an unknown code: the same 404
    for who in (citizen("someone-else"), officer("OTHER.99")):
        with pytest.raises(NotFound) as hidden:
            cluster.dossier.get(who, code)
        assert hidden.value.code == "dossier_not_found"
    with pytest.raises(NotFound):
        cluster.dossier.get(citizen(owner), f"{AGENCY}-200101-9999")
    with pytest.raises(NotFound):
        cluster.dossier.act(officer("OTHER.99"), code, "receive", {})
    # the agency drives it; refusals are typed and write nothing
    assert cluster.dossier.act(officer(), code, "receive", {})["status"] == "received"
    with pytest.raises(Conflict) as refused:
        cluster.dossier.act(officer(), code, "receive", {})
    assert refused.value.code == "transition_not_allowed" and refused.value.details["state"] == "received"
    assert refused.value.details["paused"] is False  # typed, not stringified, across RPC
    with pytest.raises(InvalidInput):
        cluster.dossier.act(officer(), code, "request-supplement", {"reason": "x"})  # missing 'missing'
    with pytest.raises(NotFound):
        cluster.dossier.act(officer(), code, "explode", {})
    view = cluster.dossier.act(officer(), code, "request-supplement",
                               {"missing": ["photo 3x4"], "reason": "photo missing", "due_date": "2099-01-01"})
    assert view["supplement"]["missing"] == ["photo 3x4"]
    photo = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64).decode()
    uploaded = cluster.dossier.upload_document(citizen(owner), code, "photo.png", "image/png", photo)
    view = cluster.dossier.supplement(citizen(owner), code, {"document_ids": [uploaded["id"]], "note": "done"})
    assert view["status"] == "supplemented"
    result = base64.b64encode(b"%PDF-1.5 result").decode()
    view = cluster.dossier.act(officer(), code, "result", {"documents": [
        {"name": "licence.pdf", "content_type": "application/pdf", "content_base64": result}]})
    assert view["status"] == "result_ready" and view["outputs"][0]["name"] == "licence.pdf"
    got = cluster.dossier.get_document(citizen(owner), code, view["outputs"][0]["id"])
    assert base64.b64decode(got["content_base64"]) == b"%PDF-1.5 result"
    with pytest.raises(NotFound):
        cluster.dossier.get_document(citizen("someone-else"), code, view["outputs"][0]["id"])
    with pytest.raises(Conflict):
        cluster.dossier.withdraw(citizen(owner), code, {})  # not after a result
    assert cluster.dossier.act(officer(), code, "return", {"note": "handed over"})["status"] == "returned"
    public = cluster.dossier.lookup(code)
    assert public["status"] == "returned" and owner not in json.dumps(public)
    mine = cluster.dossier.list_mine(citizen(owner))
    assert [i["code"] for i in mine["items"]] == [code]
    assert cluster.dossier.list_mine(citizen("someone-else"))["total"] == 0
    # audit time travel: the dossier as it was right after submission
    first, second = (dt.datetime.fromisoformat(view["timeline"][i]["at"]) for i in (0, 1))
    past = cluster.dossier.get(citizen(owner), code, (first + (second - first) / 2).isoformat())
    assert past["status"] == "submitted"
    with pytest.raises(InvalidInput):
        cluster.dossier.get(citizen(owner), code, "yesterday-ish")


def test_agency_queue_is_scoped_and_due_soonest_first(cluster, live_repo):
    owner = f"acc-{uuid.uuid4().hex[:8]}"
    codes = [seed(live_repo, owner) for _ in range(2)]
    for code in codes:
        cluster.dossier.act(officer(), code, "receive", {})
    queue = cluster.dossier.agency_queue(officer(), "received")
    listed = [i["code"] for i in queue["items"]]
    assert set(codes) <= set(listed)
    dates = [i["appointment_date"] for i in queue["items"]]
    assert dates == sorted(dates)
    assert cluster.dossier.agency_queue(officer("OTHER.99"))["total"] == 0
    assert cluster.dossier.withdraw(citizen(owner), codes[0], {"reason": "moved"})["status"] == "withdrawn"


@pytest.mark.parametrize(("filing", "field"), [
    ({}, "procedure_code"),
    ({"procedure_code": "P", "agency_code": "A", "applicant": {"full_name": "A\x07B"}}, "applicant.full_name"),
    ({"procedure_code": "P" * 5000, "agency_code": "A", "applicant": {"full_name": "A"}}, "procedure_code"),
    ({"procedure_code": "P", "agency_code": "A", "applicant": {"full_name": "A"},
      "documents": [{"requirement": "r", "name": "a.pdf", "content_type": "application/pdf",
                     "content_base64": "%%%not base64"}]}, "documents.0.content_base64"),
    ({"procedure_code": "P", "agency_code": "A", "applicant": {"full_name": "A"},
      "documents": [{"requirement": "r", "name": "a.exe", "content_type": "application/x-msdownload",
                     "content_base64": base64.b64encode(b"MZ\x90").decode()}]}, "documents.0.content_type"),
    ({"procedure_code": "P", "agency_code": "A", "applicant": {"full_name": "A"},
      "documents": [{"requirement": "r", "name": "a.pdf", "content_type": "application/pdf",
                     "content_base64": base64.b64encode(b"<html>").decode()}]}, "documents.0.content"),
    ({"procedure_code": "P", "agency_code": "A", "applicant": {"full_name": "A"},
      "form": {"k": {"nested": True}}}, "form"),
])
def test_hostile_filings_are_refused_with_the_field(cluster, filing, field):
    with pytest.raises(InvalidInput) as refused:
        cluster.dossier.submit(citizen("acc-hostile"), filing, "k-1")
    assert any(e["field"] == field for e in refused.value.details), refused.value.details


def test_only_applicants_submit(cluster):
    with pytest.raises(InvalidInput) as refused:
        cluster.dossier.submit(officer(), {"procedure_code": "P"}, None)
    assert refused.value.code == "not_an_applicant"


def _http(url: str, method: str = "GET", body: dict | None = None, headers: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_public_lookup_over_http(gateway_url, live_repo):
    owner = f"acc-{uuid.uuid4().hex[:8]}"
    code = seed(live_repo, owner)
    status, body = _http(f"{gateway_url}/api/v1/lookup/{code}")
    assert status == 200
    assert body["code"] == code and body["status"] == "submitted" and body["agency"]["code"] == AGENCY
    assert set(body) >= {"code", "status", "procedure", "agency", "received_at", "appointment_date"}
    assert "Nguyen" not in json.dumps(body) and owner not in json.dumps(body)
    for unknown in (f"{AGENCY}-200101-0001", "nonsense", "a%27%3B--", "%00", "A%0A-260101-0001", "9" * 3000):
        status, problem = _http(f"{gateway_url}/api/v1/lookup/{unknown}")
        assert status == 404 and problem["code"] == "dossier_not_found"


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/dossiers"), ("POST", "/api/v1/dossiers"), ("GET", "/api/v1/dossiers/X-260101-0001"),
    ("POST", "/api/v1/dossiers/X-260101-0001/withdraw"), ("GET", "/api/v1/agency/dossiers"),
    ("POST", "/api/v1/agency/dossiers/X-260101-0001/receive"),
])
def test_dossier_routes_need_sign_in(gateway_url, method, path):
    status, problem = _http(f"{gateway_url}{path}", method, {} if method == "POST" else None)
    assert status == 401 and problem["code"] == "unauthorized"


Wait = Callable[[Callable[[], bool], float], None]


@contextlib.contextmanager
def _dossier_events(amqp_uri: str, name: str) -> Iterator[tuple[list[dict], Wait]]:
    """A queue of its own bound to every event on ``dossier.events`` while the block runs: yields
    the bodies received so far and ``wait(done, seconds)``, which takes deliveries until
    ``done()`` or the time is up."""
    from kombu import Connection, Queue

    from portal_common.outbox import event_exchange

    with Connection(amqp_uri) as conn:
        queue = Queue(f"{name}-{uuid.uuid4().hex[:8]}", exchange=event_exchange("dossier"),
                      routing_key="#", exclusive=True, auto_delete=True)
        received: list[dict] = []

        def wait(done: Callable[[], bool], seconds: float) -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and not done():
                try:
                    conn.drain_events(timeout=1)
                except TimeoutError:
                    continue

        def take(body: dict, message: Any) -> None:  # the AMQP headers kept beside the body
            received.append({**body, "amqp_headers": dict(message.headers or {})})
            message.ack()

        with conn.Consumer(queue, callbacks=[take],
                           accept=["json"]):
            yield received, wait


def test_lifecycle_events_are_published_self_sufficient(system, amqp_uri, live_repo, cluster):
    owner = f"acc-{uuid.uuid4().hex[:8]}"
    with _dossier_events(amqp_uri, "test-dossier") as (received, wait):
        code = seed(live_repo, owner)
        cluster.dossier.act(officer(), code, "receive", {})
        wait(lambda: len([b for b in received if b["data"].get("code") == code]) >= 2, 20)
    mine = [b for b in received if b["data"].get("code") == code]
    assert [b["event_type"] for b in mine] == ["DossierSubmitted", "DossierReceived"]
    submitted = mine[0]["data"]
    assert submitted["procedure"]["version"] == 3 and submitted["procedure"]["processing_days"] == 3
    assert submitted["agency"]["code"] == AGENCY and submitted["applicant"]["full_name"]
    assert len(submitted["documents"][0]["sha256"]) == 64
    assert mine[1]["actor"]["agency_code"] == AGENCY and mine[1]["data"]["appointment_date"]


def test_every_dossier_endpoint_is_documented(gateway_url):
    status, spec = _http(f"{gateway_url}/openapi.json")
    assert status == 200
    paths = spec["paths"]
    for path, method in [
        ("/api/v1/dossiers", "post"), ("/api/v1/dossiers", "get"), ("/api/v1/dossiers/{code}", "get"),
        ("/api/v1/dossiers/{code}/documents", "post"), ("/api/v1/dossiers/{code}/supplement", "post"),
        ("/api/v1/dossiers/{code}/withdraw", "post"), ("/api/v1/dossiers/{code}/documents/{document_id}", "get"),
        ("/api/v1/lookup/{code}", "get"), ("/api/v1/agency/dossiers", "get"),
        ("/api/v1/agency/dossiers/{code}", "get"), ("/api/v1/agency/dossiers/{code}/{action}", "post"),
        ("/api/v1/dossiers/drafts", "post"), ("/api/v1/dossiers/drafts", "get"),
        ("/api/v1/dossiers/drafts/{draft_id}", "get"), ("/api/v1/dossiers/drafts/{draft_id}", "put"),
        ("/api/v1/dossiers/drafts/{draft_id}", "delete"), ("/api/v1/dossiers/drafts/{draft_id}/submit", "post"),
        ("/api/v1/dossiers/drafts/{draft_id}/documents/{document_id}", "get"),
    ]:
        assert method in paths.get(path, {}), (method, path)


def area_of(agency: dict) -> dict:
    """The applicant's province / ward that a local agency serves."""
    return {k: str(agency[f"{k}_code"]) for k in ("province", "ward") if agency.get(f"{k}_code")}


def test_submit_against_the_real_catalog(cluster):
    """A filing checked against the seeded catalog: the procedure version and agency are recorded."""
    procedure = cluster.catalog.get_procedure("1.001193")
    agencies = cluster.catalog.agencies_for(procedure["code"])
    assert agencies, "the seeded catalog offers agencies for this procedure"
    mandatory = [d for d in procedure["required_documents"] if d["mandatory"]]
    filing = {"procedure_code": procedure["code"], "agency_code": agencies[0]["code"],
              "applicant": {"full_name": "Lê Văn C", **area_of(agencies[0])},
              "documents": [{"requirement": d["id"], "name": f"{d['id']}.pdf", "content_type": "application/pdf",
                             "content_base64": base64.b64encode(b"%PDF-1.4 " + d["id"].encode()).decode()}
                            for d in mandatory]}
    owner = f"acc-{uuid.uuid4().hex[:8]}"
    key = uuid.uuid4().hex
    view = cluster.dossier.submit(citizen(owner), filing, key)
    assert view["created"] and view["procedure"]["version"] == procedure["version"]
    assert view["procedure"]["processing_days"] == procedure["processing_days"]
    assert view["code"].startswith(agencies[0]["code"] + "-")
    assert cluster.dossier.submit(citizen(owner), filing, key)["code"] == view["code"]
    with pytest.raises(InvalidInput) as incomplete:
        cluster.dossier.submit(citizen(owner), dict(filing, documents=[], agency_code="NO.SUCH"), None)
    fields = {e["field"] for e in incomplete.value.details}
    assert "agency_code" in fields and {f"documents.{d['id']}" for d in mandatory} <= fields
    with pytest.raises(InvalidInput) as unknown:
        cluster.dossier.submit(citizen(owner), dict(filing, procedure_code="9.999999"), None)
    assert unknown.value.code == "unknown_procedure"


def real_filing(cluster) -> dict:
    """A complete filing of a seeded procedure at one of its agencies, from the applicant's ward."""
    procedure = cluster.catalog.get_procedure("1.001193")
    agency = cluster.catalog.agencies_for(procedure["code"])[0]
    return {"procedure_code": procedure["code"], "agency_code": agency["code"],
            "applicant": {"full_name": "Lê Văn C", **area_of(agency)},
            "documents": [{"requirement": d["id"], "name": f"{d['id']}.pdf", "content_type": "application/pdf",
                           "content_base64": base64.b64encode(b"%PDF-1.4 " + d["id"].encode()).decode()}
                          for d in procedure["required_documents"] if d["mandatory"]]}


def test_every_lifecycle_event_is_published_through_the_outbox(system, amqp_uri, cluster):
    """A draft filed and taken through every step: each event reaches dossier.events, valid and versioned."""
    from portal_common.contracts import CATALOGUE

    owner = f"acc-{uuid.uuid4().hex[:8]}"
    with _dossier_events(amqp_uri, "test-dossier-all") as (received, wait):
        draft = cluster.dossier.save_draft(citizen(owner), real_filing(cluster))
        code = cluster.dossier.submit_draft(citizen(owner), draft["id"])["code"]
        agency = cluster.dossier.get(citizen(owner), code)["agency"]["code"]
        staff = officer(agency)
        steps = [("receive", {}), ("start-processing", {}),
                 ("request-supplement", {"missing": ["Ảnh 4x6"], "reason": "thiếu ảnh"})]
        for action, body in steps:
            cluster.dossier.act(staff, code, action, body)
        cluster.dossier.supplement(citizen(owner), code, {"note": "đã bổ sung tại quầy"})
        for action, body in [("pause", {"reason": "chờ xác minh"}), ("resume", {}),
                             ("result", {"note": "cấp giấy"}), ("return", {})]:
            cluster.dossier.act(staff, code, action, body)
        other = cluster.dossier.submit(citizen(owner), real_filing(cluster), None)["code"]
        cluster.dossier.withdraw(citizen(owner), other, {"reason": "nộp nhầm"})
        expected = {"DossierDraftSaved", "DossierDraftSubmitted", "DossierSubmitted", "DossierReceived",
                    "DossierProcessingStarted", "SupplementRequested", "DossierSupplemented", "DossierPaused",
                    "DossierResumed", "DossierResultReady", "DossierResultReturned", "DossierWithdrawn"}
        wait(lambda: expected <= {b["event_type"] for b in received}, 30)
    mine = [b for b in received if b["data"].get("code") in (code, other) or b["data"].get("draft_id") == draft["id"]]
    assert {b["event_type"] for b in mine} == expected
    for body in mine:  # each one valid against the version it says it is, with who caused it
        CATALOGUE.validate(body["event_type"], body["schema_version"], body["data"])
        assert body["actor"]["kind"] in ("citizen", "officer") and body["occurred_at"]
    stream = [b["event_type"] for b in sorted(mine, key=lambda b: b["position"]) if b["data"].get("code") == code
              and b["stream_type"] == "dossier"]
    assert stream[0] == "DossierSubmitted" and stream[-1] == "DossierResultReturned"  # in log order
    # every dossier event says the status it left the dossier in and the national portal's code
    # of it, in the envelope and as AMQP headers; draft events say nothing of the kind
    statuses = [(b["event_type"], b["attributes"]["dossier_status"], b["attributes"]["national_status_code"])
                for b in sorted(mine, key=lambda b: b["position"]) if b["stream_type"] == "dossier"]
    assert statuses == [
        ("DossierSubmitted", "submitted", 1), ("DossierReceived", "received", 2),
        ("DossierProcessingStarted", "processing", 4), ("SupplementRequested", "supplement_requested", 5),
        ("DossierSupplemented", "supplemented", 4), ("DossierPaused", "supplemented", 4),
        ("DossierResumed", "supplemented", 4), ("DossierResultReady", "result_ready", 9),
        ("DossierResultReturned", "returned", 10), ("DossierSubmitted", "submitted", 1),
        ("DossierWithdrawn", "withdrawn", 7)]
    for body in mine:
        if body["stream_type"] == "dossier":
            assert {k: body["amqp_headers"][k] for k in body["attributes"]} == body["attributes"]
        else:
            assert "attributes" not in body and "national_status_code" not in body["amqp_headers"]
