"""Agency subscriptions through the running router (a ``nameko run`` process): dossier events
published like the outbox relay does, callbacks to servers of the test's own on 127.0.0.1.

Each subscriber receives exactly the matching events of its own agency's dossiers, in order
per dossier, as CloudEvents 1.0 whose detached JWS verifies with the published keys (before
and after a key rotation) and fails after one byte changes; a failing endpoint is retried,
raises the failing alert, dead-letters, and a redelivery from a position completes the gap.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import time
import uuid
from pathlib import Path

import pytest
import requests
from cloudevents.http import from_http
from nameko.standalone.rpc import ClusterRpcProxy
from prometheus_client.parser import text_string_to_metric_families

from portal_common.contracts.dossier import NATIONAL_STATUS_CODES
from portal_common.errors import InvalidInput, NotFound
from services.router.delivery_keys import HEADER, KEY_REF, generate_pem, verify_detached
from tests.router.conftest import MAX_ATTEMPTS, RouterProcess, envelope, publish, run_ops
from tests.support.callback_server import CallbackServer
from tests.support.processes import wait_for

# What the test expects of each event: the dossier's status after it and its channels,
# written out here rather than taken from the router's own tables.
EXPECTED_STATUS = {"DossierSubmitted": "submitted", "DossierReceived": "received",
                   "DossierProcessingStarted": "processing", "SupplementRequested": "supplement_requested",
                   "DossierSupplemented": "supplemented", "DossierResultReady": "result_ready",
                   "DossierResultReturned": "returned", "DossierRefused": "refused",
                   "DossierPaused": None}
DOCUMENT_EVENTS = {"DossierSubmitted", "DossierSupplemented", "DossierResultReady"}


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("delivery-keys")
    (path / KEY_REF).write_text(generate_pem())
    (path / KEY_REF).chmod(0o600)
    return path


@pytest.fixture(scope="module")
def subs_router(router_db_url, router_amqp, tmp_path_factory, secrets_dir):
    proc = RouterProcess(router_db_url, router_amqp, tmp_path_factory.mktemp("router-subs-logs"), env={
        "AGENCY_SECRETS_DIR": str(secrets_dir), "CALLBACK_ALLOW_LOOPBACK": "yes", "FEED_HOLD": "1",
        "SUBSCRIPTION_ALERT_AFTER": "1", "ROUTER_METRICS_PORT": "0"}).start()
    yield proc
    proc.stop()


@pytest.fixture
def rpc(subs_router):
    with ClusterRpcProxy({"AMQP_URI": subs_router.amqp_uri}, timeout=30) as proxy:
        yield proxy.router


@pytest.fixture
def amqp(subs_router) -> str:
    return subs_router.amqp_uri


@pytest.fixture
def servers():
    started: list[CallbackServer] = []

    def make(**kw) -> CallbackServer:
        server = CallbackServer(**kw).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def _suffix() -> str:
    return uuid.uuid4().hex[:6].upper()


class Dossier:
    """One dossier's event stream, versions counted as the dossier service would."""

    counter = itertools.count(1)

    def __init__(self, agency: str, procedure: str, field: str, province: str):
        self.code = f"{agency}-{dt.date.today():%y%m%d}-{next(self.counter):04d}{_suffix()}"
        self.agency, self.procedure, self.field, self.province = agency, procedure, field, province
        self.version = 0

    def event(self, event_type: str) -> dict:
        self.version += 1
        if event_type == "DossierSubmitted":
            data = {"code": self.code, "owner": {"account_id": "acc-1", "kind": "citizen", "subject": None},
                    "applicant": {"full_name": "Nguyễn Văn A", "province": self.province}, "form": {},
                    "procedure": {"code": self.procedure, "version": 1, "name": "Thủ tục", "processing_days": 3,
                                  "field": self.field},
                    "agency": {"code": self.agency, "name": None, "level": None}, "documents": [],
                    "submitted_at": dt.datetime.now(dt.UTC).isoformat(), "idempotency_key": None}
        else:
            data = {"code": self.code, "agency_code": self.agency, "reason": "lý do", "missing": ["x"],
                    "documents": []}
        return envelope(event_type, data, stream_id=f"dossier-{self.code}", stream_version=self.version)


def _subscribe(rpc, agency: str, server: CallbackServer, channels: list[str], filters: dict) -> dict:
    return rpc.create_subscription(None, agency, {"callback_url": server.url, "channels": channels,
                                                  "filters": filters})


def _matches(sub_filters: dict, channels: list[str], ev: dict) -> bool:
    ev_channels = ["dossiers"] + (["documents"] if ev["event_type"] in DOCUMENT_EVENTS else [])
    if not set(channels) & set(ev_channels):
        return False
    return all(str(ev[key]) in ([v] if isinstance(v, str) else v) for key, v in sub_filters.items())


def _verify_all(server: CallbackServer, jwks: dict) -> set[str]:
    """Every delivery is a valid structured CloudEvent whose JWS verifies; returns the kids."""
    kids = set()
    for delivery in server.snapshot():
        headers, body = delivery["headers"], delivery["body"]
        assert headers["Content-Type"].startswith("application/cloudevents+json")
        event = from_http(headers, body)
        assert event["specversion"] == "1.0" and event["source"] == "/portal/dossier"
        assert event["type"].startswith("vn.gov.portal.") and "/asyncapi.json#/components/messages/" in \
            event["dataschema"]
        kids.add(verify_detached(headers[HEADER], body, jwks))
        tampered = bytearray(body)
        tampered[len(tampered) // 2] ^= 0x01
        with pytest.raises(ValueError):
            verify_detached(headers[HEADER], bytes(tampered), jwks)
    return kids


def test_each_subscriber_gets_exactly_its_matching_events_in_order(rpc, servers, secrets_dir, amqp):
    a, b = f"SUBA-{_suffix()}", f"SUBB-{_suffix()}"
    srv = {name: servers() for name in ("a_all", "a_p1_received", "a_docs", "b_received", "b_hn")}
    subs = {
        "a_all": (a, ["dossiers"], {}),
        "a_p1_received": (a, ["dossiers"], {"procedure_code": "P1", "status": ["received", "processing"]}),
        "a_docs": (a, ["documents"], {"field": "F-HT"}),
        "b_received": (b, ["dossiers", "documents"], {"event_type": "DossierReceived"}),
        "b_hn": (b, ["dossiers"], {"province_code": "01", "field": ["F-HT", "F-DD"]}),
    }
    for name, (agency, channels, filters) in subs.items():
        created = _subscribe(rpc, agency, srv[name], channels, filters)
        assert created["agency_code"] == agency and created["state"] == "active"
    assert srv["a_all"].requests[0][0] == "OPTIONS"  # the handshake came first

    journeys = [
        ["DossierSubmitted", "DossierReceived", "DossierProcessingStarted", "SupplementRequested",
         "DossierSupplemented", "DossierResultReady", "DossierResultReturned"],
        ["DossierSubmitted", "DossierRefused"],
        ["DossierSubmitted", "DossierReceived", "DossierProcessingStarted", "DossierResultReady"],
    ]
    dossiers = [Dossier(agency, proc, field, prov) for agency in (a, b)
                for proc, field, prov in (("P1", "F-HT", "01"), ("P2", "F-DD", "79"), ("P1", "F-XY", "01"))]
    sent: list[dict] = []
    rounds = max(len(j) for j in journeys)
    plan = [(d, journeys[i % len(journeys)]) for i, d in enumerate(dossiers)]
    for step in range(rounds):  # interleave the dossiers, one event each per round
        batch = []
        for d, journey in plan:
            if step < len(journey):
                env = d.event(journey[step])
                batch.append(env)
                status = EXPECTED_STATUS[journey[step]]
                sent.append({"agency": d.agency, "event_id": env["event_id"], "event_type": journey[step],
                             "dossier_code": d.code, "procedure_code": d.procedure, "field": d.field,
                             "province_code": d.province, "status": status, "version": d.version})
        publish(amqp, batch)
        time.sleep(0.05)

    expected = {name: [e for e in sent if e["agency"] == agency and _matches(filters, channels, e)]
                for name, (agency, channels, filters) in subs.items()}
    assert all(expected.values()), "every subscription has something to receive"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(len(s.deliveries) < len(expected[n]) for n, s in srv.items()):
        time.sleep(0.2)
    counts = {n: (len(s.deliveries), len(expected[n])) for n, s in srv.items()}
    assert all(got >= want for got, want in counts.values()), f"(received, expected): {counts}"
    time.sleep(1.0)  # nothing more arrives
    jwks = rpc.delivery_keys()
    for name, server in srv.items():
        events = server.events()
        assert sorted(e["id"] for e in events) == sorted(e["event_id"] for e in expected[name]), name
        assert len(events) == len({e["id"] for e in events}), f"{name}: a duplicate"
        by_dossier: dict[str, list[int]] = {}
        for event in events:
            by_dossier.setdefault(event["subject"], []).append(event["dossierversion"])
            want = next(e for e in expected[name] if e["event_id"] == event["id"])
            assert event["agencycode"] == want["agency"] and event["dossierstatus"] == want["status"]
            assert event["nationalstatuscode"] == NATIONAL_STATUS_CODES[want["status"]]
            assert event["type"] == f"vn.gov.portal.{want['event_type']}.v1"
            assert event["data"]["code"] == want["dossier_code"]
        for code, versions in by_dossier.items():
            assert versions == sorted(versions), f"{name}: {code} out of order: {versions}"
        _verify_all(server, jwks)


def test_key_rotation_keeps_old_and_new_deliveries_verifiable(rpc, servers, secrets_dir, amqp):
    agency = f"ROT-{_suffix()}"
    server = servers()
    _subscribe(rpc, agency, server, ["dossiers"], {})
    d = Dossier(agency, "P1", "F-HT", "01")
    publish(amqp, [d.event("DossierSubmitted")])
    wait_for(lambda: len(server.deliveries) == 1, 30, 0.2, "the first delivery")
    old_kid = rpc.delivery_keys()["keys"][0]["kid"]

    old_pem = (secrets_dir / KEY_REF).read_text()
    (secrets_dir / f"{KEY_REF}_PREVIOUS").write_text(old_pem)
    (secrets_dir / f"{KEY_REF}_PREVIOUS").chmod(0o600)
    (secrets_dir / KEY_REF).write_text(generate_pem())  # rotated in place: no restart
    publish(amqp, [d.event("DossierReceived")])
    wait_for(lambda: len(server.deliveries) == 2, 30, 0.2, "the delivery after the rotation")

    jwks = rpc.delivery_keys()
    assert len(jwks["keys"]) == 2 and old_kid in {k["kid"] for k in jwks["keys"]}
    kids = _verify_all(server, jwks)
    assert len(kids) == 2 and old_kid in kids, "signed before and after the rotation, both verify"
    # the overlap ends: the old delivery no longer verifies against the key set without it
    (secrets_dir / f"{KEY_REF}_PREVIOUS").unlink()
    current = rpc.delivery_keys()
    assert [k["kid"] for k in current["keys"]] != [old_kid]
    first = server.snapshot()[0]
    with pytest.raises(ValueError):
        verify_detached(first["headers"][HEADER], first["body"], current)


def test_subscriptions_are_the_agencys_own_and_bad_input_is_refused(rpc, servers):
    a, b = f"OWN-{_suffix()}", f"OTH-{_suffix()}"
    server = servers()
    mine = _subscribe(rpc, a, server, ["dossiers"], {})
    with pytest.raises(NotFound):
        rpc.get_subscription(b, mine["id"])
    with pytest.raises(NotFound):
        rpc.end_subscription(None, b, mine["id"])
    with pytest.raises(NotFound):
        rpc.get_subscription(a, "not-a-uuid")
    assert [s["id"] for s in rpc.list_subscriptions(b)] == []
    assert [s["id"] for s in rpc.list_subscriptions(a)] == [mine["id"]]
    for body in ({"callback_url": server.url, "channels": ["dossiers"], "filters": {"colour": "red"}},
                 {"callback_url": server.url, "channels": ["dossiers"], "filters": {"status": [{"x": 1}]}},
                 {"callback_url": server.url, "channels": ["gossip"], "filters": {}},
                 {"callback_url": server.url, "channels": [], "filters": {}},
                 {"channels": ["dossiers"]},
                 {"callback_url": "file:///etc/passwd", "channels": ["dossiers"], "filters": {}}):
        with pytest.raises(InvalidInput):
            rpc.create_subscription(None, a, body)
    refusing = servers(handshake=False)
    with pytest.raises(InvalidInput) as refused:
        _subscribe(rpc, a, refusing, ["dossiers"], {})
    assert refused.value.code == "callback_refused"
    assert len(rpc.list_subscriptions(a)) == 1, "nothing half-made"
    ended = rpc.end_subscription(None, a, mine["id"])
    assert ended["state"] == "ended"
    with pytest.raises(NotFound):
        rpc.get_subscription(a, mine["id"])


def _metric(subs_router_rpc, name: str, sub_id: str) -> float:
    port = subs_router_rpc.health()["metrics_port"]
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("subscription") == sub_id:
                return sample.value
    raise AssertionError(f"{name} has no sample for {sub_id}")


def test_a_failing_endpoint_is_retried_alerted_dead_lettered_and_redelivered(rpc, servers, subs_router, amqp):
    agency = f"FAIL-{_suffix()}"
    server = servers()
    sub = _subscribe(rpc, agency, server, ["dossiers"], {})
    d = Dossier(agency, "P1", "F-HT", "01")
    publish(amqp, [d.event("DossierSubmitted")])
    wait_for(lambda: len(server.deliveries) == 1, 30, 0.2, "the first delivery")

    server.failing = True
    events = [d.event(t) for t in ("DossierReceived", "DossierProcessingStarted", "DossierResultReady")]
    publish(amqp, events)
    # MAX_ATTEMPTS attempts each, then dead-lettered and the next one is tried
    wait_for(lambda: rpc.get_subscription(agency, sub["id"])["dead_lettered"] >= 3, 60, 0.3, "dead letters")
    status = next(s for s in rpc.subscription_status() if s["id"] == sub["id"])
    assert status["failing_for_seconds"] >= 1 and status["dead_lettered"] == 3 and status["last_error"]
    assert _metric(rpc, "portal_subscription_failing", sub["id"]) == 1
    assert _metric(rpc, "portal_subscription_dead_letters", sub["id"]) == 3
    dead = rpc.subscription_dead_letters(sub["id"])
    assert [x["event_id"] for x in dead] == [e["event_id"] for e in events]
    assert all(x["attempts"] == MAX_ATTEMPTS for x in dead)
    posts = sum(1 for m, _ in server.requests if m == "POST")
    assert posts == 1 + 3 * MAX_ATTEMPTS, "every failed entry was retried up to the limit"

    # paused: the endpoint is back but nothing is sent
    paused = run_ops(subs_router.amqp_uri, "subscription-pause", sub["id"], "--json")
    assert paused.returncode == 0 and json.loads(paused.stdout)["state"] == "paused"
    server.failing = False
    publish(amqp, [d.event("DossierResultReturned")])
    time.sleep(2.0)
    assert len(server.deliveries) == 1
    resumed = run_ops(subs_router.amqp_uri, "subscription-resume", sub["id"], "--json")
    assert resumed.returncode == 0 and json.loads(resumed.stdout)["state"] == "active"
    wait_for(lambda: len(server.deliveries) == 2, 30, 0.2, "the entry held while paused")
    assert _metric(rpc, "portal_subscription_failing", sub["id"]) == 0

    # redeliver from the first dead letter's position: the gap is filled, the consumer drops copies
    out = run_ops(subs_router.amqp_uri, "subscription-redeliver", sub["id"], "--from", str(dead[0]["position"]),
                  "--json")
    assert out.returncode == 0, out.stderr
    wait_for(lambda: len(server.deliveries) >= 6, 30, 0.2, "the redelivered entries")
    received = [e["id"] for e in server.events()]
    unique = list(dict.fromkeys(received))  # what a consumer keeps, dropping copies by id
    sent_ids = [d_ev["event_id"] for d_ev in [*events]]
    assert set(sent_ids) <= set(unique) and len(unique) == 5, received
    versions = [e["dossierversion"] for e in server.events()]
    assert versions[-4:] == [2, 3, 4, 5], "the redelivery runs in feed order"
    listed = run_ops(subs_router.amqp_uri, "subscriptions", "--agency", agency)
    assert listed.returncode == 0 and sub["id"] in listed.stdout


def test_the_feed_long_polls_and_holds_early_events_for_order(rpc, subs_router, amqp):
    agency = f"FEED-{_suffix()}"
    d = Dossier(agency, "P2", "F-DD", "79")
    first = d.event("DossierSubmitted")
    publish(amqp, [first])
    page = {}
    wait_for(lambda: page.update(rpc.agency_events(agency, 0, 10, 0)) or page["items"], 30, 0.2, "the feed")
    head = page["last_position"]
    received, processing = d.event("DossierReceived"), d.event("DossierProcessingStarted")
    started = time.monotonic()
    publish(amqp, [processing])  # version 3 before version 2: held until 2 comes
    time.sleep(0.3)
    publish(amqp, [received])
    got = rpc.agency_events(agency, head, 10, 5)
    assert time.monotonic() - started < 5
    wait_for(lambda: len(rpc.agency_events(agency, head, 10, 0)["items"]) == 2, 10, 0.2, "both entries")
    got = rpc.agency_events(agency, head, 10, 0)
    assert [i["event_type"] for i in got["items"]] == ["DossierReceived", "DossierProcessingStarted"]
    assert [i["national_status_code"] for i in got["items"]] == [2, 4]
    assert got["last_position"] == got["items"][-1]["position"]
    # an empty long poll waits, then answers with the same position
    t0 = time.monotonic()
    empty = rpc.agency_events(agency, got["last_position"], 10, 1)
    assert empty == {"items": [], "last_position": got["last_position"]} and time.monotonic() - t0 >= 0.9
    with pytest.raises(InvalidInput):
        rpc.agency_events(agency, -1, 10, 0)


def test_a_callback_that_redirects_is_refused_and_its_target_never_called(rpc, servers):
    target = servers()
    redirecting = servers(redirect_to=target.url)
    with pytest.raises(InvalidInput) as refused:
        _subscribe(rpc, f"RED-{_suffix()}", redirecting, ["dossiers"], {})
    assert refused.value.code == "callback_refused"
    assert redirecting.requests == [("OPTIONS", "/hook")] and target.requests == []


def test_route_deliveries_carry_the_cloudevents_binding_and_the_jws(rpc, amqp):
    """The agency queue (AMQP binding: ``cloudEvents:*`` application properties, the body is the
    data) and the JWS over the body, verifiable with the published keys."""
    import pika

    agency = f"BIND-{_suffix()}"
    d = Dossier(agency, "P1", "F-HT", "01")
    env = d.event("DossierSubmitted")
    publish(amqp, [env])
    got = {}

    def fetch():
        # The router declares the queue with its first delivery; until that declaration has
        # settled the broker may close the channel (404) or the whole connection (541 noproc),
        # so each attempt uses a connection of its own.
        conn = pika.BlockingConnection(pika.URLParameters(amqp))
        try:
            method, props, body = conn.channel().basic_get(f"agency.{agency}", auto_ack=True)
        except (pika.exceptions.ChannelClosedByBroker, pika.exceptions.ConnectionClosedByBroker):
            return False
        finally:
            if conn.is_open:
                conn.close()
        if method is not None:
            got.update(props=props, body=body)
        return bool(got)

    wait_for(fetch, 30, 0.2, "the queued delivery")
    headers, body = got["props"].headers, got["body"]
    assert headers["cloudEvents:specversion"] == "1.0" and headers["cloudEvents:id"] == env["event_id"]
    assert headers["cloudEvents:type"] == "vn.gov.portal.DossierSubmitted.v1"
    assert headers["cloudEvents:subject"] == d.code
    assert headers["cloudEvents:deliveryid"] == json.loads(body)["delivery_id"] == headers["delivery_id"]
    assert headers["cloudEvents:nationalstatuscode"] == 1 and headers["cloudEvents:dossierstatus"] == "submitted"
    assert (json.loads(body)["status"], json.loads(body)["national_status_code"]) == ("submitted", 1)
    jwks = rpc.delivery_keys()
    assert verify_detached(headers[HEADER], body, jwks)
    with pytest.raises(ValueError):
        verify_detached(headers[HEADER], body.replace(b"{", b"{ ", 1), jwks)
