"""Helpers of the payment tests: a citizen with a dossier of a procedure with a fee, the
agency's token, the local platform's notifications and direct RPC to the payment service."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg2
import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from services.payment.domain import signing
from services.payment.settings import LOCAL_SECRET
from tests.support.accounts import register_citizen, staff_token
from tests.support.filings import complete_filing
from tests.support.http import http
from tests.support.processes import wait_for

FEE_PROCEDURE = "2.000488"  # Phiếu lý lịch tư pháp: 200.000 đồng, paid before reception
FEE = 200_000
FREE_PROCEDURE = "1.001193"  # Đăng ký khai sinh: free
PROVINCE = "1"


def wait_until(predicate, timeout: float = 60.0, what: str = "condition"):
    return wait_for(predicate, timeout, 0.2, what)


class Citizen:
    def __init__(self, gateway_url: str):
        self.url = gateway_url
        self.account = register_citizen(gateway_url)
        self.token = self.account["access_token"]

    def get(self, path: str) -> tuple[int, Any]:
        status, body, _ = http(f"{self.url}{path}", token=self.token)
        return status, body

    def post(self, path: str, body: Any = None, headers: dict | None = None) -> tuple[int, Any]:
        status, answer, _ = http(f"{self.url}{path}", "POST", body if body is not None else {}, token=self.token,
                                 headers=headers)
        return status, answer

    def file(self, procedure_code: str = FEE_PROCEDURE) -> dict:
        _, procedure = self.get(f"/api/v1/procedures/{procedure_code}")
        _, agencies = self.get(f"/api/v1/procedures/{procedure_code}/agencies?province={PROVINCE}")
        agencies = agencies.get("items", agencies) if isinstance(agencies, dict) else agencies
        status, dossier = self.post("/api/v1/dossiers", complete_filing(procedure, agencies[0], "Trần Thị Nộp"),
                                    headers={"Idempotency-Key": str(uuid.uuid4())})
        assert status == 201, dossier
        return dossier

    def payments(self, code: str) -> dict:
        status, body = self.get(f"/api/v1/dossiers/{code}/payments")
        assert status == 200, body
        return body

    def due_now(self, code: str) -> list:
        """What is due, once the payment service has heard of the dossier's charge."""
        return wait_until(lambda: self.payments(code)["due"], what="the fee to be due")

    def pay(self, code: str, key: str | None = None, fee_ids: list | None = None) -> dict:
        status, body = self.post(f"/api/v1/dossiers/{code}/payments", {"fee_ids": fee_ids} if fee_ids else {},
                                 headers={"Idempotency-Key": key or str(uuid.uuid4())})
        assert status in (200, 201), body
        return body

    def dossier(self, code: str) -> dict:
        status, body = self.get(f"/api/v1/dossiers/{code}")
        assert status == 200, body
        return body


def pending_payment(citizen: Citizen) -> tuple[str, dict]:
    """A fee dossier of ``citizen`` and a pending payment of its fee."""
    code = citizen.file()["code"]
    citizen.due_now(code)
    return code, citizen.pay(code)


def complete(gateway_url: str, payment_id: str, outcome: str = "success") -> None:
    status, body, _ = http(f"{gateway_url}/api/v1/dev/payment-platform/complete", "POST",
                           {"payment_id": payment_id, "outcome": outcome})
    assert status == 202, body


def paid_payments(gateway_url: str, citizen: Citizen, count: int) -> list[tuple[str, dict]]:
    """``count`` fee dossiers of ``citizen`` with their payments, each settled at the stand-in platform."""
    paid = []
    for _ in range(count):
        code, payment = pending_payment(citizen)
        complete(gateway_url, payment["id"], "success")
        wait_until(lambda c=code: citizen.payments(c)["items"][0]["status"] == "succeeded")
        paid.append((code, payment))
    return paid


def notification(reference: str, amount: int, *, success: bool = True, transaction_no: str = "26120500000001",
                 secret: str = LOCAL_SECRET) -> dict:
    code = "00" if success else "24"
    fields = {"vnp_TmnCode": "PORTAL01", "vnp_TxnRef": reference, "vnp_Amount": str(amount * 100),
              "vnp_ResponseCode": code, "vnp_TransactionStatus": code, "vnp_TransactionNo": transaction_no,
              "vnp_PayDate": dt.datetime.now(dt.timezone(dt.timedelta(hours=7))).strftime("%Y%m%d%H%M%S")}
    return signing.signed(fields, secret)


def notify(gateway_url: str, fields: dict) -> tuple[int, Any]:
    status, body, _ = http(f"{gateway_url}/api/v1/payments/notify", "POST", fields)
    return status, body


@pytest.fixture
def citizen(gateway_url) -> Citizen:
    return Citizen(gateway_url)


@pytest.fixture(scope="module")
def payment_rpc(system, amqp_uri):
    with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=60) as proxy:
        yield proxy.payment


@pytest.fixture
def sql(system, migrated_database):
    """Run SQL in the payment schema (to plant lines in the stand-in platform's settlement file)."""
    conn = psycopg2.connect(migrated_database, options="-c search_path=payment")
    conn.autocommit = True

    def run(statement: str, args: Any = ()) -> list:
        with conn.cursor() as cur:
            cur.execute(statement, args)
            return cur.fetchall() if cur.description else []

    yield run
    conn.close()


def agency_token(gateway_url: str, dossier: dict) -> str:
    return staff_token(gateway_url, "officer", dossier["agency"]["code"])
