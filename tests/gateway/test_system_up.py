"""The system as `make up` starts it: every service answers through the gateway."""

import json
import time
import urllib.request
import uuid

from kombu import Connection, Exchange, Queue


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.headers, json.loads(resp.read())


def test_every_service_is_ready(gateway_url):
    status, headers, body = _get(f"{gateway_url}/ready")
    assert status == 200
    assert set(body["services"]) == {"identity", "catalog", "dossier", "router", "payment", "gateway"}
    assert body["services"].pop("gateway") == {"status": "ok", "revocations_loaded": True,
                                               "instance": "gateway-1"}  # which gateway process answered
    for name, check in body["services"].items():
        assert check["status"] == "ok", name
        assert check["checks"]["database"] is True, name
        assert check["instance"] == f"{name}-1" and check["pid"] > 0, name  # the one process of each
        assert check["gc_frozen_objects"] > 10_000, name  # its start-up heap is out of full collections
        # the log's background consumers yield the CPU to the services a caller waits on
        assert check["cpu_nice"] == (10 if name in ("router", "identity") else 0), name
    assert headers["X-Request-ID"]


def test_the_gateway_s_rpc_requests_and_their_replies_are_transient(gateway_url, amqp_uri):
    """/ready asks each service over RPC: those requests and their replies cross the broker as
    transient messages (delivery mode 1), never written to its disk."""
    with Connection(amqp_uri) as conn:
        capture = Queue(f"capture-{uuid.uuid4().hex[:8]}", Exchange("nameko-rpc", type="topic", durable=True),
                        routing_key="#", exclusive=True, auto_delete=True)(conn.default_channel)
        capture.declare()
        assert _get(f"{gateway_url}/ready")[0] == 200
        requests: dict[str, int] = {}
        replies: list[int] = []  # a reply's routing key is its queue's id, a request's "service.method"
        deadline = time.monotonic() + 10
        while (len(requests) < 5 or len(replies) < 5) and time.monotonic() < deadline:
            message = capture.get(no_ack=True)
            if message is None:
                time.sleep(0.05)
                continue
            key, mode = message.delivery_info["routing_key"], message.properties.get("delivery_mode")
            if key.endswith(".health"):
                requests[key] = mode
            elif "." not in key:
                replies.append(mode)
    assert requests == {f"{name}.health": 1 for name in ("identity", "catalog", "dossier", "router", "payment")}
    assert len(replies) >= 5 and set(replies) == {1}


def test_unknown_path_is_a_problem_not_html(gateway_url):
    req = urllib.request.Request(f"{gateway_url}/api/v1/nothing-here", headers={"X-Request-ID": "abc-123"})
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("expected 404")
    except urllib.error.HTTPError as err:
        assert err.code == 404
        assert err.headers["Content-Type"].startswith("application/problem+json")
        body = json.loads(err.read())
        assert body["code"] == "not_found"
        assert body["request_id"] == "abc-123"


def _lines_of(system, key: str, request_id: str) -> list[dict]:
    lines = []
    for raw in (system.log_dir / f"{key}.log").read_text(errors="replace").splitlines():
        if request_id in raw and raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


def test_a_refused_lookup_is_one_info_line_per_process_not_an_error(system, gateway_url):
    """A lookup of a code nobody filed is the caller's mistake: the dossier service and the
    gateway each log it as one info line, with no error record and no traceback."""
    import time
    import uuid

    request_id = f"refused-{uuid.uuid4().hex}"
    req = urllib.request.Request(f"{gateway_url}/api/v1/lookup/H29.01-200101-9999",
                                 headers={"X-Request-ID": request_id})
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("expected 404")
    except urllib.error.HTTPError as err:
        assert err.code == 404 and json.loads(err.read())["code"] == "dossier_not_found"
    deadline = time.monotonic() + 10
    while not _lines_of(system, "dossier", request_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    dossier, gateway = _lines_of(system, "dossier", request_id), _lines_of(system, "gateway", request_id)
    assert [line["message"] for line in dossier] == ["rpc dossier.lookup refused"]
    assert any(line.get("status") == 404 for line in gateway)
    for line in dossier + gateway:
        assert line["level"] == "info" and "exception" not in line, line
