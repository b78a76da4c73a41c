"""Agency subscriptions, the pull feed and delivery keys through the running system's gateway:
a citizen files, the agency acts, and the agency's subscription receives signed CloudEvents
that verify with the published keys (also with the offline tool on a saved delivery, and not
once a byte is changed); the feed returns the same events in order and long-polls; another
agency sees none of it; views carry the national status code."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid

import pytest

from services.router.delivery_keys import HEADER, verify_detached
from tests.e2e.conftest import ROOT, commune_agencies, filing, http, wait_until
from tests.support.callback_server import CallbackServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def world(gateway_url, accounts, procedure):
    base = f"{gateway_url}/api/v1"
    x, y = commune_agencies(gateway_url, 2)
    servers = {"x": CallbackServer().start(), "y": CallbackServer().start()}
    tokens = {"x": accounts.staff_token(gateway_url, "agency_system", x["code"]),
              "y": accounts.staff_token(gateway_url, "agency_system", y["code"]),
              "citizen": accounts.register_citizen(gateway_url)["access_token"]}
    yield {"base": base, "x": x, "y": y, "servers": servers, "tokens": tokens, "procedure": procedure}
    for server in servers.values():
        server.stop()


def _subscribe(w, who: str, body: dict) -> tuple[int, dict]:
    status, created, _ = http(f"{w['base']}/agency/subscriptions", "POST", body, w["tokens"][who])
    return status, created


def test_subscribe_file_act_and_receive_verifiable_cloudevents(world, gateway_url, tmp_path):
    w = world
    status, sub = _subscribe(w, "x", {"callback_url": w["servers"]["x"].url, "channels": ["dossiers"],
                                      "filters": {"procedure_code": w["procedure"]["code"]},
                                      "auth_header": "Bearer back-office-token"})
    assert status == 201, sub
    assert sub["agency_code"] == w["x"]["code"] and sub["has_auth_header"] and "auth_header" not in sub
    status, other = _subscribe(w, "y", {"callback_url": w["servers"]["y"].url, "channels": ["dossiers"],
                                        "filters": {}})
    assert status == 201, other

    status, listed, _ = http(f"{w['base']}/agency/subscriptions", token=w["tokens"]["x"])
    assert status == 200 and [s["id"] for s in listed["items"]] == [sub["id"]]
    assert http(f"{w['base']}/agency/subscriptions/{sub['id']}", token=w["tokens"]["x"])[0] == 200
    for method in ("GET", "DELETE"):
        status, problem, _ = http(f"{w['base']}/agency/subscriptions/{sub['id']}", method,
                                        token=w["tokens"]["y"])
        assert status == 404 and problem["code"] == "subscription_not_found", problem

    status, head, _ = http(f"{w['base']}/agency/events?after=0&limit=1000", token=w["tokens"]["x"])
    assert status == 200
    after = head["last_position"]

    status, created, _ = http(f"{w['base']}/dossiers", "POST", filing(w["procedure"], w["x"]),
                              w["tokens"]["citizen"], {"Idempotency-Key": uuid.uuid4().hex})
    assert status == 201, created
    code = created["code"]
    assert created["national_status_code"] == 1
    wait_until(lambda: any(e["subject"] == code for e in w["servers"]["x"].events()), what="the submission")
    status, body, _ = http(f"{w['base']}/agency/dossiers/{code}/receive", "POST", {}, w["tokens"]["x"])
    assert status == 200, body
    wait_until(lambda: len([e for e in w["servers"]["x"].events() if e["subject"] == code]) >= 2,
               what="the reception")

    # a long poll answers as soon as the next event is in the feed
    status, feed, _ = http(f"{w['base']}/agency/events?after={after}&limit=1000", token=w["tokens"]["x"])
    mine = [i for i in feed["items"] if i["dossier_code"] == code]
    assert [i["event_type"] for i in mine] == ["DossierSubmitted", "DossierReceived"]
    assert [i["national_status_code"] for i in mine] == [1, 2]
    positions = [i["position"] for i in feed["items"]]
    assert positions == sorted(positions) and feed["last_position"] == positions[-1]
    answer: dict = {}

    def poll() -> None:
        answer["t0"] = time.monotonic()
        answer["response"] = http(f"{w['base']}/agency/events?after={feed['last_position']}&wait=20",
                                  token=w["tokens"]["x"])
        answer["t1"] = time.monotonic()

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(1.0)
    assert http(f"{w['base']}/agency/dossiers/{code}/start-processing", "POST", {}, w["tokens"]["x"])[0] == 200
    poller.join(30)
    status, polled, _ = answer["response"]
    assert status == 200 and polled["items"], polled
    assert answer["t1"] - answer["t0"] < 15 and answer["t1"] - answer["t0"] >= 0.9
    assert [i["event_type"] for i in polled["items"] if i["dossier_code"] == code] == ["DossierProcessingStarted"]

    # views carry the national code beside our status
    status, view, _ = http(f"{w['base']}/dossiers/{code}", token=w["tokens"]["citizen"])
    assert status == 200 and (view["status"], view["national_status_code"]) == ("processing", 4)
    status, public, _ = http(f"{w['base']}/lookup/{code}")
    assert status == 200 and public["national_status_code"] == 4
    status, queue, _ = http(f"{w['base']}/agency/dossiers?page_size=100", token=w["tokens"]["x"])
    assert all("national_status_code" in item for item in queue["items"])

    # the deliveries: CloudEvents signed with a published key; the other agency got nothing of it
    status, jwks, _ = http(f"{w['base']}/agency/delivery-keys")  # public: anyone can verify
    assert status == 200 and jwks["keys"] and all(k["kty"] == "OKP" and k["crv"] == "Ed25519" for k in jwks["keys"])
    wait_until(lambda: len([e for e in w["servers"]["x"].events() if e["subject"] == code]) >= 3,
               what="the processing event")
    deliveries = [d for d in w["servers"]["x"].snapshot() if code.encode() in d["body"]]
    assert [d["headers"]["Authorization"] for d in deliveries] == ["Bearer back-office-token"] * 3
    for delivery in deliveries:
        verify_detached(delivery["headers"][HEADER], delivery["body"], jwks)
    field = w["procedure"]["field"]
    events = [e for e in w["servers"]["x"].events() if e["subject"] == code]
    assert [(e["procedurecode"], e["field"], e["provincecode"]) for e in events] == \
        [(w["procedure"]["code"], field["code"] if isinstance(field, dict) else str(field),
          str(w["x"]["province_code"]))] * 3, "the attributes subscriptions filter on"
    assert [e["nationalstatuscode"] for e in events] == [1, 2, 4]
    assert not any(code.encode() in d["body"] for d in w["servers"]["y"].snapshot())

    # the offline tool: a saved delivery verifies, a tampered copy does not
    saved = tmp_path / "delivery.http"
    first = deliveries[0]
    head = "".join(f"{k}: {v}\r\n" for k, v in first["headers"].items())
    saved.write_bytes(b"POST /hook HTTP/1.1\r\n" + head.encode() + b"\r\n" + first["body"])
    jwks_url = f"{gateway_url}/api/v1/agency/delivery-keys"
    ok = subprocess.run([sys.executable, "-m", "services.router.verify", str(saved), "--jwks", jwks_url],
                        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "VERIFIED" in ok.stdout, ok.stdout + ok.stderr
    tampered = tmp_path / "tampered.http"
    tampered.write_bytes(saved.read_bytes().replace(b'"specversion"', b'"specversion" ', 1))
    bad = subprocess.run([sys.executable, "-m", "services.router.verify", str(tampered), "--jwks", jwks_url],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "NOT VERIFIED" in bad.stdout

    assert http(f"{w['base']}/agency/subscriptions/{sub['id']}", "DELETE", token=w["tokens"]["x"])[0] == 204
    assert http(f"{w['base']}/agency/subscriptions/{sub['id']}", token=w["tokens"]["x"])[0] == 404


@pytest.mark.parametrize("body, code", [
    ({"callback_url": "CALLBACK", "channels": ["dossiers"], "filters": {"colour": "red"}}, "invalid_filters"),
    ({"callback_url": "CALLBACK", "channels": ["gossip"], "filters": {}}, "validation_failed"),
    ({"channels": ["dossiers"]}, "validation_failed"),
    ({"callback_url": "https://169.254.169.254/latest", "channels": ["dossiers"], "filters": {}}, "callback_refused"),
    ({"callback_url": "https://10.1.2.3/hook", "channels": ["dossiers"], "filters": {}}, "callback_refused"),
    ({"callback_url": "file:///etc/passwd", "channels": ["dossiers"], "filters": {}}, "callback_refused"),
])
def test_bad_subscriptions_are_refused_with_a_problem(world, body, code):
    w = world
    body = {k: (w["servers"]["x"].url if v == "CALLBACK" else v) for k, v in body.items()}
    status, problem = _subscribe(w, "x", body)
    assert status == 422 and problem["code"] == code, problem


def test_feed_and_subscriptions_are_for_agencies_only(world):
    w = world
    for path in ("subscriptions", "events"):
        status, _, _ = http(f"{w['base']}/agency/{path}", token=w["tokens"]["citizen"])
        assert status == 403
        assert http(f"{w['base']}/agency/{path}")[0] == 401
    assert http(f"{w['base']}/agency/events?wait=31", token=w["tokens"]["x"])[0] == 422
    assert http(f"{w['base']}/agency/events?after=-1", token=w["tokens"]["x"])[0] == 422
