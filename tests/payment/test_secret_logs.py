"""The merchant secret and the platform's checksums never reach a log: a payment through the
running system, with a forged notification and a rotation of the secret file on the running
payment service, then every log the gateway and the services wrote is searched for the
secrets and every ``vnp_SecureHash`` value that passed."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from services.payment.domain import signing
from services.payment.settings import LOCAL_SECRET
from tests.payment.conftest import FEE, complete, notification, notify, pending_payment, wait_until

pytestmark = pytest.mark.e2e
CURRENT, PREVIOUS = "PAYMENT_MERCHANT_SECRET", "PAYMENT_MERCHANT_SECRET_PREVIOUS"


def _write(folder: Path, name: str, value: str, mode: int = 0o600) -> None:
    """Replace the file as a mounted secret changes: a new file renamed over the old."""
    staged = folder / f".{name}.new"
    staged.write_text(value + "\n")
    staged.chmod(mode)
    os.replace(staged, folder / name)


def _logs(system) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8", errors="replace")
            for p in sorted(Path(system.log_dir).iterdir()) if p.is_file()}


def _url_fields(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def _platform_hashes(sql) -> set[str]:
    """Every checksum the local platform signed its notifications with, this run."""
    found = set()
    for (body,) in sql("SELECT body FROM platform_notifications"):
        body = json.loads(body) if isinstance(body, str) else body
        found.add(body[signing.HASH_FIELD])
    return found


def test_no_merchant_secret_or_checksum_reaches_a_log(system, gateway_url, citizen, sql):
    folder = Path(system.extra_env["PAYMENT_SECRETS_DIR"])
    first, second = f"merchant-first-{uuid.uuid4().hex}", f"merchant-second-{uuid.uuid4().hex}"
    checksums: set[str] = set()
    try:
        _write(folder, CURRENT, first)
        code, payment = pending_payment(citizen)
        request = _url_fields(payment["payment_url"])
        assert signing.verify(request, [first])  # the file's secret signs, read by the running service
        checksums.add(request[signing.HASH_FIELD])

        forged = notification(payment["reference"], FEE, secret="not-the-merchant-secret")
        checksums.add(forged[signing.HASH_FIELD])
        status, body = notify(gateway_url, forged)
        assert status == 401 and body["code"] == "invalid_signature"

        # rotation: the first secret retires beside the second (its file readable by all: warned)
        _write(folder, PREVIOUS, first)
        _write(folder, CURRENT, second, mode=0o644)
        late = notification(payment["reference"], FEE, secret=first, transaction_no="26120577770001")
        checksums.add(late[signing.HASH_FIELD])
        status, body = notify(gateway_url, late)  # the platform has not switched yet
        assert status == 200 and body["result"] == "applied", body
        wait_until(lambda: citizen.dossier(code)["status"] == "submitted", what="the first dossier paid")

        code2, payment2 = pending_payment(citizen)
        request = _url_fields(payment2["payment_url"])
        assert signing.verify(request, [second]) and not signing.verify(request, [first])
        checksums.add(request[signing.HASH_FIELD])
        complete(gateway_url, payment2["id"])  # the platform, switched, signs with the second
        wait_until(lambda: citizen.dossier(code2)["status"] == "submitted", what="the second dossier paid")

        os.remove(folder / PREVIOUS)  # the overlap ends
        stale = notification(payment2["reference"], FEE, secret=first, transaction_no="26120577770002")
        checksums.add(stale[signing.HASH_FIELD])
        assert notify(gateway_url, stale)[0] == 401
    finally:
        for name in (CURRENT, PREVIOUS):  # back to the local secret for the other tests
            (folder / name).unlink(missing_ok=True)
    checksums |= _platform_hashes(sql)

    # the payment service's warning about the open file reached its log: the logs are the right ones
    warned = wait_until(lambda: [n for n, t in _logs(system).items()
                                 if n.startswith("payment") and f"{folder / CURRENT} has mode 644" in t],
                        what="the warning about the file's mode in the payment service's log")
    assert warned
    logs = _logs(system)
    assert {"gateway.log", "payment.log"} <= set(logs), sorted(logs)
    for label, secret in (("current", second), ("previous", first), ("local", LOCAL_SECRET)):
        leaked = [name for name, text in logs.items() if secret in text]
        assert not leaked, f"the {label} merchant secret is in {leaked}"
    lowered = {name: text.lower() for name, text in logs.items()}
    assert len(checksums) >= 6  # two requests, three of ours, the platform's
    leaked = sorted({name for name, text in lowered.items() for h in checksums if h.lower() in text})
    assert not leaked, f"a vnp_SecureHash value is in {leaked}"
