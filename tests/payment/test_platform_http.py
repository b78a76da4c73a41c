"""The payment platform's merchant API and settlement file over HTTP, through the running system.

The payment service is restarted pointing at a relay on 127.0.0.1 in front of the local
stand-in's HTTP API (``/api/v1/dev/payment-platform/...``): the relay records what is asked,
can forge the stand-in's answers (a field changed, the checksum left as it was) and can be taken
down (connection refused on its port) and brought back on the same port.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deploy.launcher import LocalSystem
from services.payment.domain import signing
from services.payment.settings import LOCAL_SECRET
from tests.payment.conftest import complete, paid_payments, pending_payment, wait_until
from tests.support.http import http

pytestmark = pytest.mark.e2e
LOCAL_TZ = dt.timezone(dt.timedelta(hours=7))
KEYS = ("PAYMENT_PLATFORM_API_URL", "PAYMENT_SETTLEMENT_URL")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PlatformRelay:
    """A relay to the stand-in's merchant API (``/api``) and settlement file (``/settlements``)."""

    def __init__(self, gateway_url: str):
        self.target = f"{gateway_url}/api/v1/dev/payment-platform"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.seen: list[tuple[str, str]] = []  # (vnp_Command or "settlement", reference or date)
        self.forge = False
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _forward(self, url: str, data: bytes | None) -> tuple[int, dict]:
                request = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                                 headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(request, timeout=30) as resp:
                        return resp.status, json.loads(resp.read())
                except urllib.error.HTTPError as exc:
                    return exc.code, json.loads(exc.read() or b"{}")

            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                asked = json.loads(data)
                relay.seen.append((asked.get("vnp_Command"), asked.get("vnp_TxnRef")))
                status, answer = self._forward(f"{relay.target}/merchant_webapi/api/transaction", data)
                if relay.forge and status == 200:  # the platform's answer altered on the way
                    answer["vnp_TransactionNo"] = "99999999"
                    answer["vnp_TransactionStatus"] = "00"
                self._answer(status, json.dumps(answer).encode())

            def do_GET(self) -> None:
                day = self.path.partition("date=")[2]
                relay.seen.append(("settlement", day))
                status, answer = self._forward(f"{relay.target}/settlements?date={day}", None)
                if relay.forge and status == 200 and answer.get("items"):
                    answer["items"][0]["amount"] = int(answer["items"][0]["amount"]) + 1
                self._answer(status, json.dumps(answer).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Down: nothing listens on the port any more (connection refused)."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def asked(self, command: str, key: str) -> bool:
        return (command, key) in self.seen


def _restart_payment(system) -> None:
    system.stop_service("payment")
    for key in system.instance_keys("payment"):
        system.start_one(key)
    wait_until(system.ready, timeout=90, what="the payment service restarted")


@pytest.fixture(scope="module")
def relay(system, gateway_url):
    proxy = PlatformRelay(gateway_url)
    proxy.start()
    saved = {k: system.extra_env.get(k) for k in KEYS}
    system.extra_env.update({"PAYMENT_PLATFORM_API_URL": f"{proxy.url}/api",
                             "PAYMENT_SETTLEMENT_URL": f"{proxy.url}/settlements?date={{date}}"})
    _restart_payment(system)
    try:
        yield proxy
    finally:
        proxy.forge = False
        if proxy.server is None:
            proxy.start()
        for key, value in saved.items():
            if value is None:
                system.extra_env.pop(key, None)
            else:
                system.extra_env[key] = value
        _restart_payment(system)
        proxy.stop()


@pytest.fixture
def stand_in(relay):
    relay.forge = False
    if relay.server is None:
        relay.start()
    return relay


def _later() -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()


def _paid_at_platform_only(sql, payment: dict, number: str) -> None:
    """The platform took the money but its notification is lost (nothing queued to send)."""
    sql("UPDATE platform_transactions SET status = 'success', transaction_no = %s, completed_at = now() "
        "WHERE payment_id = %s", (number, payment["id"]))


def test_the_launcher_points_payment_at_the_stand_ins_api_with_local_adapters_only():
    on = LocalSystem("postgresql://x/y", "amqp://x/", 8123, extra_env={"LOCAL_ADAPTERS": "yes"}).env("payment")
    assert on["PAYMENT_PLATFORM_API_URL"] == \
        "http://127.0.0.1:8123/api/v1/dev/payment-platform/merchant_webapi/api/transaction"
    assert on["PAYMENT_SETTLEMENT_URL"].endswith("/api/v1/dev/payment-platform/settlements?date={date}")
    chosen = LocalSystem("postgresql://x/y", "amqp://x/", 8123, extra_env={
        "LOCAL_ADAPTERS": "yes", "PAYMENT_PLATFORM_API_URL": "https://platform.example/api"}).env("payment")
    assert chosen["PAYMENT_PLATFORM_API_URL"] == "https://platform.example/api"
    off = LocalSystem("postgresql://x/y", "amqp://x/", 8123, extra_env={"LOCAL_ADAPTERS": "no"}).env("payment")
    assert off.get("PAYMENT_PLATFORM_API_URL") != on["PAYMENT_PLATFORM_API_URL"]


def test_the_stand_ins_api_checks_the_request_and_signs_its_answer(gateway_url, citizen):
    _, payment = pending_payment(citizen)
    url = f"{gateway_url}/api/v1/dev/payment-platform/merchant_webapi/api/transaction"
    request = {"vnp_RequestId": "r1", "vnp_Version": "2.1.0", "vnp_Command": "querydr", "vnp_TmnCode": "PORTAL01",
               "vnp_TxnRef": payment["reference"], "vnp_TransactionDate": "20260101000000",
               "vnp_CreateDate": "20260101000000", "vnp_IpAddr": "127.0.0.1", "vnp_OrderInfo": "q"}
    status, answer, _ = http(url, "POST", signing.pipe_signed(request, signing.QUERYDR_REQUEST, LOCAL_SECRET))
    assert status == 200 and answer["vnp_ResponseCode"] == "00" and answer["vnp_TransactionStatus"] == "01"
    assert answer["vnp_Amount"] == str(payment["amount"] * 100)
    assert signing.pipe_verify(answer, signing.QUERYDR_RESPONSE, [LOCAL_SECRET])
    status, answer, _ = http(url, "POST", signing.pipe_signed(request, signing.QUERYDR_REQUEST, "not-the-secret"))
    assert status == 200 and answer["vnp_ResponseCode"] == "97"
    refund = dict(request, vnp_Command="refund", vnp_TransactionType="02", vnp_Amount=str(payment["amount"] * 100),
                  vnp_TransactionNo="0", vnp_CreateBy="x")
    status, answer, _ = http(url, "POST", signing.pipe_signed(refund, signing.REFUND_REQUEST, LOCAL_SECRET))
    assert answer["vnp_ResponseCode"] == "95"  # not paid: nothing to refund
    assert signing.pipe_verify(answer, signing.REFUND_RESPONSE, [LOCAL_SECRET])


def test_a_stale_pending_payment_is_queried_over_http_and_settled(stand_in, citizen, payment_rpc, sql):
    code, payment = pending_payment(citizen)
    _paid_at_platform_only(sql, payment, "26120566660001")
    assert payment["reference"] in payment_rpc.check_pending(_later())
    assert stand_in.asked("querydr", payment["reference"])
    paid = citizen.payments(code)["items"][0]
    assert paid["status"] == "succeeded"
    wait_until(lambda: citizen.dossier(code)["status"] == "submitted", what="dossier paid")


def test_a_forged_answer_is_refused_and_changes_nothing(stand_in, gateway_url, citizen, payment_rpc, sql):
    code, payment = pending_payment(citizen)
    stand_in.forge = True  # the platform says "not paid yet"; the relay turns it into a success
    assert payment["reference"] not in payment_rpc.check_pending(_later())
    assert citizen.payments(code)["items"][0]["status"] == "pending"
    assert citizen.dossier(code)["status"] == "awaiting_payment"
    # a refund whose answer is forged stays requested, and is finished once answers are genuine
    code2, paid = pending_payment(citizen)
    complete(gateway_url, paid["id"], "success")
    wait_until(lambda: citizen.payments(code2)["items"][0]["status"] == "succeeded")
    operator = {"actor": {"kind": "operator", "id": "portal-ops"}}
    assert payment_rpc.refund(paid["id"], "paid twice", operator)["refund_status"] == "requested"
    assert citizen.payments(code2)["items"][0]["status"] == "succeeded"
    stand_in.forge = False
    refunded = wait_until(lambda: (p := citizen.payments(code2)["items"][0])["status"] == "refunded" and p,
                          what="the refund retried")
    assert refunded["refund_status"] == "succeeded"


def test_a_refund_goes_over_http(stand_in, gateway_url, citizen, payment_rpc):
    code, payment = pending_payment(citizen)
    complete(gateway_url, payment["id"], "success")
    wait_until(lambda: citizen.payments(code)["items"][0]["status"] == "succeeded")
    operator = {"actor": {"kind": "operator", "id": "portal-ops"}}
    assert payment_rpc.refund(payment["id"], "paid at the counter", operator)["refund_status"] == "succeeded"
    assert stand_in.asked("refund", payment["reference"])
    assert citizen.payments(code)["items"][0]["status"] == "refunded"
    day = dt.datetime.now(LOCAL_TZ).date().isoformat()
    _, file, _ = http(f"{gateway_url}/api/v1/dev/payment-platform/settlements?date={day}")
    assert [x["kind"] for x in file["items"] if x["reference"] == payment["reference"]] == ["payment", "refund"]


def test_reconciliation_reads_the_settlement_file_over_http(stand_in, gateway_url, citizen, payment_rpc, sql):
    paid = paid_payments(gateway_url, citizen, 2)
    references = [payment["reference"] for _, payment in paid]
    matched, different = references
    day = dt.datetime.now(LOCAL_TZ).date().isoformat()
    sql("UPDATE platform_settlements SET amount = amount + 1000 WHERE reference = %s AND kind = 'payment'",
        (different,))
    result = payment_rpc.reconcile(day)
    assert stand_in.asked("settlement", day)
    kinds = {m["reference"]: m["kind"] for m in result["items"]}
    assert kinds[different] == "amount_differs" and matched not in kinds
    before = len(payment_rpc.mismatches(day))
    stand_in.forge = True  # a line altered on the way: the file's checksum no longer holds
    with pytest.raises(Exception) as refused:
        payment_rpc.reconcile(day)
    assert "settlement_bad_checksum" in str(refused.value)
    assert len(payment_rpc.mismatches(day)) == before


def test_the_platform_down_leaves_the_payment_pending_until_it_is_back(stand_in, citizen, payment_rpc, sql):
    code, payment = pending_payment(citizen)
    _paid_at_platform_only(sql, payment, "26120566660002")
    stand_in.stop()  # connection refused on the relay's port
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", stand_in.port)) != 0
    assert payment["reference"] not in payment_rpc.check_pending(_later())
    assert citizen.payments(code)["items"][0]["status"] == "pending"
    assert citizen.dossier(code)["status"] == "awaiting_payment"
    stand_in.start()  # back, on the same port
    assert payment["reference"] in payment_rpc.check_pending(_later())
    assert stand_in.asked("querydr", payment["reference"])
    assert citizen.payments(code)["items"][0]["status"] == "succeeded"
    wait_until(lambda: citizen.dossier(code)["status"] == "submitted", what="dossier paid")
