"""Agencies through the gateway: each sees and acts only on what was routed to it, endpoint by
endpoint; a liên thông hand-over shows the chain to both agencies.

Another agency's dossier answers exactly like an unknown one (404, nothing revealed); a role
that is not an agency's gets 403 on every agency endpoint, and an agency gets 403 on the
applicant's endpoints; hostile input gets a 4xx problem, never a 500.
"""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import commune_agencies, filing, http, wait_until

pytestmark = pytest.mark.e2e

ACTIONS = ("receive", "refuse", "request-supplement", "start-processing", "pause", "resume", "extend",
           "forward", "result", "return", "reject")
BODIES = {"refuse": {"reason": "x"}, "request-supplement": {"reason": "x", "missing": ["y"]},
          "pause": {"reason": "x"}, "extend": {"reason": "x", "new_date": "2030-01-01"},
          "forward": {"reason": "x", "to_agency_code": "P01-UBND"}, "reject": {"reason": "x"}}


@pytest.fixture(scope="module")
def world(gateway_url, accounts, procedure):
    """A dossier filed with office X; tokens for X, for another office Y, and other roles."""
    base = f"{gateway_url}/api/v1"
    x, y = commune_agencies(gateway_url, 4)[2:4]
    citizen = accounts.register_citizen(gateway_url)
    status, created, _ = http(f"{base}/dossiers", "POST", filing(procedure, x), citizen["access_token"],
                              {"Idempotency-Key": uuid.uuid4().hex})
    assert status == 201, created
    tokens = {
        "citizen": citizen["access_token"],
        "x": accounts.staff_token(gateway_url, "agency_system", x["code"]),
        "x_officer": accounts.staff_token(gateway_url, "officer", x["code"]),
        "y": accounts.staff_token(gateway_url, "officer", y["code"]),
        "ghost": accounts.staff_token(gateway_url, "agency_system", "NOT.THIS.ONE"),
        "editor": accounts.staff_token(gateway_url, "editor"),
        "operator": accounts.staff_token(gateway_url, "operator"),
    }
    code = created["code"]
    doc = created["inputs"][0]["id"]

    def delivered() -> list[dict]:
        status, body, _ = http(f"{base}/agency/deliveries?dossier_code={code}", token=tokens["x"])
        assert status == 200, body
        return body["items"]

    [delivery] = wait_until(delivered, timeout=60, what="the dossier's delivery to X")
    return {"base": base, "x": x, "y": y, "code": code, "doc": doc, "delivery": delivery["delivery_id"],
            "tokens": tokens, "citizen": citizen}


def _agency_endpoints(w: dict, code: str) -> list[tuple[str, str, dict | None]]:
    base = w["base"]
    return [
        ("GET", f"{base}/agency/dossiers/{code}", None),
        ("GET", f"{base}/agency/dossiers/{code}/documents/{w['doc']}", None),
        *[("POST", f"{base}/agency/dossiers/{code}/{action}", BODIES.get(action, {})) for action in ACTIONS],
    ]


def _version(w: dict) -> int:
    status, body, _ = http(f"{w['base']}/dossiers/{w['code']}", token=w["tokens"]["citizen"])
    assert status == 200
    return body["version"]


@pytest.mark.parametrize("who", ["y", "ghost"])
def test_another_agency_gets_404_on_every_dossier_endpoint_and_changes_nothing(world, who):
    w = world
    before = _version(w)
    unknown = w["code"][:-4] + "0000" if not w["code"].endswith("0000") else w["code"][:-4] + "0001"
    for method, url, body in _agency_endpoints(w, w["code"]):
        status, problem, headers = http(url, method, body, w["tokens"][who])
        assert status == 404, (url, status, problem)
        assert headers["Content-Type"].startswith("application/problem+json")
        # the same answer as a code that does not exist: nothing is revealed
        other_status, other, _ = http(url.replace(w["code"], unknown), method, body, w["tokens"][who])
        assert (other_status, other["code"]) == (404, problem["code"]), url
    assert _version(w) == before


def test_another_agency_does_not_see_it_in_its_queue_or_deliveries_and_cannot_confirm_it(world):
    w, base = world, world["base"]
    for who in ("y", "ghost"):
        status, queue, _ = http(f"{base}/agency/dossiers?page_size=100", token=w["tokens"][who])
        assert status == 200 and w["code"] not in [d["code"] for d in queue["items"]]
        status, intake, _ = http(f"{base}/agency/deliveries?dossier_code={w['code']}", token=w["tokens"][who])
        assert status == 200 and intake["items"] == []
        status, problem, _ = http(f"{base}/agency/deliveries/{w['delivery']}/ack", "POST", {}, w["tokens"][who])
        assert status == 404 and problem["code"] == "delivery_not_found"
    status, queue, _ = http(f"{base}/agency/dossiers?page_size=100", token=w["tokens"]["x"])
    assert status == 200 and w["code"] in [d["code"] for d in queue["items"]]
    status, ack, _ = http(f"{base}/agency/deliveries/{w['delivery']}/ack", "POST", {}, w["tokens"]["x"])
    assert status == 200 and ack == {"delivery_id": w["delivery"], "status": "acknowledged"}


@pytest.mark.parametrize("who", ["citizen", "editor", "operator"])
def test_other_roles_get_403_on_every_agency_endpoint(world, who):
    w, base = world, world["base"]
    endpoints = [*_agency_endpoints(w, w["code"]), ("GET", f"{base}/agency/dossiers", None),
                 ("GET", f"{base}/agency/deliveries", None),
                 ("POST", f"{base}/agency/deliveries/{w['delivery']}/ack", {})]
    for method, url, body in endpoints:
        status, problem, _ = http(url, method, body, w["tokens"][who])
        assert status == 403 and problem["code"] == "forbidden", (url, status, problem)
        assert http(url, method, body)[0] == 401, url  # and nobody without a token


def test_an_agency_gets_403_on_the_applicants_endpoints(world):
    w, base, code = world, world["base"], world["code"]
    for method, url, body in [
        ("GET", f"{base}/dossiers", None), ("GET", f"{base}/dossiers/{code}", None),
        ("GET", f"{base}/dossiers/{code}/documents/{w['doc']}", None),
        ("POST", f"{base}/dossiers/{code}/supplement", {"note": "x"}),
        ("POST", f"{base}/dossiers/{code}/withdraw", {}),
    ]:
        status, problem, _ = http(url, method, body, w["tokens"]["x"])
        assert status == 403, (url, status, problem)


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/agency/dossiers?status=exploded", None),
    ("GET", "/agency/dossiers?page_size=1000000", None),
    ("GET", "/agency/dossiers?status=%01", None),
    ("GET", "/agency/deliveries?status=lost", None),
    ("GET", "/agency/deliveries?limit=1000000000", None),
    ("GET", "/agency/deliveries?dossier_code=" + "x" * 3_000, None),
    ("POST", "/agency/deliveries/not-a-uuid/ack", {}),
    ("POST", f"/agency/deliveries/{uuid.uuid4()}/ack", {}),
    ("GET", "/agency/dossiers/" + "G" * 3_000, None),
    ("POST", "/agency/dossiers/{code}/self-destruct", {}),
    ("POST", "/agency/dossiers/{code}/refuse", {"reason": "x" * 10_000}),
    ("POST", "/agency/dossiers/{code}/refuse", {"reason": "a\u0000b"}),
    ("POST", "/agency/dossiers/{code}/refuse", {"reason": ["not", "text"]}),
    ("POST", "/agency/dossiers/{code}/request-supplement", {"reason": "x", "missing": "not a list"}),
    ("POST", "/agency/dossiers/{code}/extend", {"reason": "x", "new_date": "tomorrow"}),
    ("POST", "/agency/dossiers/{code}/forward", {"reason": "x", "to_agency_code": "NO.SUCH.AGENCY"}),
    ("POST", "/agency/dossiers/{code}/result", {"documents": [{"name": "a.exe", "content_type": "application/pdf",
                                                               "content_base64": "TVqQAAMAAAAEAAAA"}]}),
])
def test_hostile_agency_input_gets_a_clear_4xx(world, method, path, body):
    w = world
    before = _version(w)
    url = w["base"] + path.replace("{code}", w["code"])
    status, problem, headers = http(url, method, body, w["tokens"]["x_officer"])
    assert 400 <= status < 500 and status not in (401, 403), (path[:80], status, problem)
    assert headers["Content-Type"].startswith("application/problem+json") and problem["code"]
    assert _version(w) == before


def test_an_overlong_url_is_refused_before_it_reaches_the_api(world):
    status, problem, headers = http(f"{world['base']}/agency/dossiers/{'G' * 10_000}", token=world["tokens"]["x"])
    assert status == 404 and headers["Content-Type"].startswith("application/problem+json"), problem
    status, _, _ = http(f"{world['base']}/agency/dossiers/{'G' * 70_000}", token=world["tokens"]["x"])
    assert status == 414  # over the HTTP server's 64 kB request line


def test_lien_thong_hand_over_shows_the_chain_to_both_agencies(gateway_url, accounts, procedure):
    """Office A receives the birth registration and hands it to the ward's police (the next
    procedure of the chain); both back offices are told and both can read the dossier; only
    the holder may act on it now."""
    base = f"{gateway_url}/api/v1"
    a = commune_agencies(gateway_url, 5)[4]
    police = a["code"].replace("-UBND", "-CA")
    assert http(f"{base}/agencies/{police}")[0] == 200
    citizen = accounts.register_citizen(gateway_url)
    status, created, _ = http(f"{base}/dossiers", "POST", filing(procedure, a), citizen["access_token"],
                              {"Idempotency-Key": uuid.uuid4().hex})
    assert status == 201, created
    code = created["code"]
    ta = accounts.staff_token(gateway_url, "agency_system", a["code"])
    tp = accounts.staff_token(gateway_url, "agency_system", police)
    assert http(f"{base}/agency/dossiers/{code}", token=tp)[0] == 404  # not routed to the police yet
    assert http(f"{base}/agency/dossiers/{code}/receive", "POST", {}, ta)[0] == 200
    status, forwarded, _ = http(f"{base}/agency/dossiers/{code}/forward", "POST",
                                {"to_agency_code": police, "reason": "Liên thông đăng ký thường trú"}, ta)
    assert status == 200 and forwarded["status"] == "forwarded", forwarded

    def intake(token: str) -> list[str]:
        status, body, _ = http(f"{base}/agency/deliveries?dossier_code={code}", token=token)
        assert status == 200, body
        return sorted(r["event_type"] for r in body["items"])

    # the router hands the dossier on to the police and tells the office that passed it on
    wait_until(lambda: intake(tp) == ["DossierForwarded"], timeout=60, what="hand-over delivered to the police")
    wait_until(lambda: intake(ta) == ["DossierForwarded", "DossierSubmitted"], timeout=60,
               what="hand-over echoed to the origin")
    for token in (ta, tp):
        status, view, _ = http(f"{base}/agency/dossiers/{code}", token=token)
        assert status == 200 and view["agency"]["code"] == police
        hand_over = [t for t in view["timeline"] if t["event"] == "DossierForwarded"]
        assert [t["from_agency"] for t in hand_over] == [a["code"]]
        assert {x["code"] if isinstance(x, dict) else x for x in view["agencies"]} >= {a["code"], police}
    status, problem, _ = http(f"{base}/agency/dossiers/{code}/start-processing", "POST", {}, ta)
    assert status == 409 and problem["code"] == "not_assigned"
    status, view, _ = http(f"{base}/agency/dossiers/{code}/start-processing", "POST", {}, tp)
    assert status == 200 and view["status"] == "processing"
    status, mine, _ = http(f"{base}/dossiers/{code}", token=citizen["access_token"])
    assert "DossierForwarded" in [t["event"] for t in mine["timeline"]]
