"""``python -m bench payment [--quick] [--gateway-url URL]``: the platform's notifications handled per second.

Files N dossiers of a procedure with a fee (default 400; ``--quick`` 100), opens one payment
on each, then sends the platform's signed success notification for every payment with C
clients in flight (default 20) to ``POST /api/v1/payments/notify``: the signature check, the
payment's state change (its charge paid, a receipt number), the event append, through the
gateway and one RPC. The baseline, measured in the same run with the same concurrency, is the
one-RPC read of the same dossiers' payments (``GET /api/v1/dossiers/{code}/payments``). After
the run every payment must have succeeded exactly once (a duplicate of each notification is
sent too and must change nothing). Any failed request, or a payment not succeeded once, ends
the run with ``FAILED payment errors=N`` and no ratio.

Without ``--gateway-url`` it starts the whole system (local adapters on) on a throw-away
database and a vhost of its own. Last line: ``RESULT payment notifications=N concurrency=C
notify_per_s=... p50_ms=... p99_ms=... baseline_per_s=... baseline_p50_ms=...
baseline_p99_ms=... ratio=... errors=0``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.support import (
    Failures,
    bench_server,
    finish,
    free_port,
    ms,
    print_measures,
    private_vhost,
    request_json,
    run_pool,
    throwaway_database,
)
from portal_common import config

PROCEDURE = "2.000488"  # Phiếu lý lịch tư pháp: 200.000 đồng before reception
LOCAL_TZ = dt.timezone(dt.timedelta(hours=7))


def _setup(gateway_url: str, n: int) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """A citizen with ``n`` fee dossiers, each with one pending payment."""
    from tests.support.accounts import register_citizen
    from tests.support.filings import complete_filing

    token = register_citizen(gateway_url)["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    _, procedure = request_json(f"{gateway_url}/api/v1/procedures/{PROCEDURE}")
    _, agencies = request_json(f"{gateway_url}/api/v1/procedures/{PROCEDURE}/agencies?province=1")
    agencies = agencies.get("items", agencies) if isinstance(agencies, dict) else agencies
    filing = complete_filing(procedure, agencies[0], "Người Thử Tải")

    def file_and_pay(i: int) -> dict[str, Any]:
        status, dossier = request_json(f"{gateway_url}/api/v1/dossiers", "POST", filing,
                                       dict(auth, **{"Idempotency-Key": f"bench-{uuid.uuid4().hex}"}))
        if status != 201:
            raise SystemExit(f"filing answered {status}: {dossier}")
        code = dossier["code"]
        for _ in range(600):  # the payment service learns of the fee from the dossier's event
            _, view = request_json(f"{gateway_url}/api/v1/dossiers/{code}/payments", headers=auth)
            if view.get("due"):
                break
            time.sleep(0.1)
        status, payment = request_json(f"{gateway_url}/api/v1/dossiers/{code}/payments", "POST", {},
                                       dict(auth, **{"Idempotency-Key": f"pay-{uuid.uuid4().hex}"}))
        if status != 201:
            raise SystemExit(f"payment answered {status}: {payment}")
        return {"code": code, **payment}

    with ThreadPoolExecutor(max_workers=10) as pool:
        return auth, list(pool.map(file_and_pay, range(n)))


def _notification(payment: dict[str, Any], secret: str, index: int) -> dict[str, str]:
    from services.payment.domain import signing  # the platform's checksum, as the stand-in signs

    now = dt.datetime.now(LOCAL_TZ)
    fields = {"vnp_TmnCode": "PORTAL01", "vnp_TxnRef": payment["reference"],
              "vnp_Amount": str(payment["amount"] * 100), "vnp_ResponseCode": "00",
              "vnp_TransactionStatus": "00", "vnp_TransactionNo": f"{now:%y%m%d}{index:08d}",
              "vnp_PayDate": now.strftime("%Y%m%d%H%M%S")}
    return signing.signed(fields, secret)


def measure(gateway_url: str, n: int, concurrency: int, secret: str) -> int:
    print(f"setting up {n} dossiers with a pending payment each ...", flush=True)
    auth, payments = _setup(gateway_url, n)
    notes = [_notification(p, secret, i) for i, p in enumerate(payments)]
    answers: Counter[str] = Counter()
    lock = threading.Lock()

    def read_one(payment: dict[str, Any]) -> bool:
        status, _ = request_json(f"{gateway_url}/api/v1/dossiers/{payment['code']}/payments", headers=auth)
        return status == 200

    def notify_one(note: dict[str, str]) -> bool:
        status, body = request_json(f"{gateway_url}/api/v1/payments/notify", "POST", note)
        key = f"{status} {(body or {}).get('result') or (body or {}).get('code')}"
        with lock:
            answers[key] += 1
        return status == 200

    run_pool(payments[: min(n, 50)], concurrency, read_one)  # warm up connections and workers
    base_s, base_lat, base_fail = run_pool(payments, concurrency, read_one)
    note_s, note_lat, note_fail = run_pool(notes, concurrency, notify_one)
    _, _, dup_fail = run_pool(notes, concurrency, notify_one)  # every one again: no effect
    succeeded = 0
    for payment in payments:
        _, view = request_json(f"{gateway_url}/api/v1/dossiers/{payment['code']}/payments", headers=auth)
        items = view.get("items", [])
        succeeded += len(items) == 1 and items[0]["status"] == "succeeded"
    base_rate, note_rate = n / base_s, n / note_s
    print(f"notification answers: {dict(answers)}; payments succeeded once: {succeeded} of {n}")
    print(f"{n} requests per measure, {concurrency} in flight")
    print_measures([("baseline: GET dossier payments (1 RPC)", base_rate, base_lat, base_fail),
                    ("POST payments/notify (signed)", note_rate, note_lat, note_fail)], 42)
    failures = Failures()
    failures.add("baseline read", base_fail)
    failures.add("notification", note_fail)
    failures.add("duplicate notification", dup_fail)
    failures.add("payment not succeeded exactly once", n - succeeded)
    return finish("payment", f"notifications={n} concurrency={concurrency} notify_per_s={note_rate:.1f} "
                  f"p50_ms={ms(note_lat, 50):.1f} p99_ms={ms(note_lat, 99):.1f} baseline_per_s={base_rate:.1f} "
                  f"baseline_p50_ms={ms(base_lat, 50):.1f} baseline_p99_ms={ms(base_lat, 99):.1f} "
                  f"ratio={note_rate / base_rate:.3f}", failures)


def main(argv: list[str] | None = None) -> int:
    from services.payment.settings import LOCAL_SECRET

    parser = argparse.ArgumentParser(prog="python -m bench payment")
    parser.add_argument("--quick", action="store_true", help="100 notifications")
    parser.add_argument("--notifications", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--gateway-url", default=None, help="a running system with local adapters (default: start one)")
    args = parser.parse_args(argv)
    n = args.notifications or (100 if args.quick else 400)
    secret = config.env("PAYMENT_MERCHANT_SECRET", None) or LOCAL_SECRET
    if args.gateway_url:
        return measure(args.gateway_url, n, args.concurrency, secret)
    base_uri = config.amqp_uri()
    with private_vhost(base_uri, f"bench_payment_{uuid.uuid4().hex[:8]}") as amqp_uri, contextlib.ExitStack() as stack:
        from deploy.launcher import LocalSystem, migrate_and_seed

        dsn = stack.enter_context(throwaway_database(f"portal_bench_payment_{uuid.uuid4().hex[:6]}", bench_server()))
        migrate_and_seed(dsn)
        system = LocalSystem(dsn, amqp_uri, free_port(), log_dir=Path(tempfile.mkdtemp(prefix="bench-payment-logs-")),
                             extra_env={"LOCAL_ADAPTERS": "yes", "RATE_LOOKUP": "10000000",
                                        "RATE_DEFAULT": "10000000", "RATE_SIGNIN": "100000",
                                        "RATE_REGISTER": "100000", "RATE_OTP": "100000",
                                        "PAYMENT_MERCHANT_SECRET": secret, "METRICS_PORT": "0"})
        system.start()
        try:
            system.wait_ready(timeout=120)
            return measure(system.gateway_url, n, args.concurrency, secret)
        finally:
            system.stop()


if __name__ == "__main__":
    sys.exit(main())
