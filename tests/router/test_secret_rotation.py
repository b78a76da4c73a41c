"""Rotating an agency's callback secret on a running router (real RabbitMQ, PostgreSQL, HTTP):
a secret file changed on disk signs the very next delivery, a previous secret keeps the
agency's old one working during the switch, a missing secret fails the attempt."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from deploy.backoffice import signature
from deploy.backoffice.inbox import Inbox
from deploy.backoffice.receiver import CallbackReceiver
from tests.router.conftest import (
    SECRET_NAME,
    RouterProcess,
    deliveries,
    publish,
    run_ops,
    submitted,
)
from tests.router.test_channels import Endpoint
from tests.support.processes import wait_for

OPERATOR = {"actor": {"kind": "operator", "id": "t"}}


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("agency-secrets")


@pytest.fixture(scope="module")
def router(router_db_url, router_amqp, tmp_path_factory, secrets_dir):
    """This module's router reads secret files from ``secrets_dir`` (overrides conftest's)."""
    proc = RouterProcess(router_db_url, router_amqp, tmp_path_factory.mktemp("router-logs"),
                         env={"AGENCY_SECRETS_DIR": str(secrets_dir)}).start()
    yield proc
    proc.stop()


def _names() -> tuple[str, str, str]:
    """A fresh agency, dossier code and secret name (no test sees another's files)."""
    tag = uuid.uuid4().hex[:8].upper()
    return f"T{tag}", f"G{uuid.uuid4().hex[:12].upper()}", f"AGENCY_SECRET_ROT_{tag}"


def _write_secret(directory, name: str, value: str) -> None:
    """Replace the file the way a mounted secret changes: a new file renamed over the old."""
    staged = directory / f".{name}.new"
    staged.write_text(value + "\n")
    staged.chmod(0o600)
    os.replace(staged, directory / name)


def _route(rpc, agency: str, url: str, secret_ref: str) -> None:
    rpc.configure_route(OPERATOR, {"agency_code": agency, "channel": "http", "endpoint": url,
                                   "secret_ref": secret_ref})


def test_a_secret_file_changed_on_disk_signs_the_next_delivery_without_a_restart(
        router, rpc, router_store, secrets_dir):
    agency, first, ref = _names()
    _write_secret(secrets_dir, ref, "secret-one")
    inbox = Inbox()
    receiver = CallbackReceiver(inbox, "secret-one").start()
    pid = router.proc.pid
    try:
        _route(rpc, agency, receiver.url, ref)
        publish(router.amqp_uri, [submitted(first, agency)])
        wait_for(lambda: len(inbox.seen) == 1, what="delivery signed with the first secret")

        _write_secret(secrets_dir, ref, "secret-two")
        receiver.secret = "secret-two"  # the agency switches at the same moment, no overlap
        second = f"G{uuid.uuid4().hex[:12].upper()}"
        publish(router.amqp_uri, [submitted(second, agency)])
        wait_for(lambda: len(inbox.seen) == 2, what="delivery signed with the rotated secret")
    finally:
        receiver.stop()
    assert receiver.rejected == 0 and router.proc.pid == pid and router.proc.poll() is None
    [row] = deliveries(router_store, second)
    assert row["status"] == "acknowledged" and row["attempts"] == 1  # the very next attempt


def test_during_the_overlap_both_signatures_are_sent_and_either_secret_verifies(
        router, rpc, router_store, secrets_dir):
    agency, code, ref = _names()
    _write_secret(secrets_dir, ref, "secret-new")
    _write_secret(secrets_dir, f"{ref}_PREVIOUS", "secret-old")
    endpoint = Endpoint()
    try:
        _route(rpc, agency, endpoint.url("/204"), ref)
        publish(router.amqp_uri, [submitted(code, agency)])
        wait_for(lambda: endpoint.requests, what="callback during the overlap")
    finally:
        endpoint.server.shutdown()
        endpoint.server.server_close()
    [(_, _, headers, body)] = endpoint.requests
    listed = headers[signature.SIGNATURE_HEADER].split(",")
    assert len(listed) == 2 and all(s.startswith("sha256=") for s in listed)
    for secret in ("secret-new", "secret-old"):  # the agency may not have switched yet, or has
        signature.verify(secret, headers[signature.TIMESTAMP_HEADER], headers[signature.SIGNATURE_HEADER], body)
    with pytest.raises(signature.SignatureError, match="does not match"):
        signature.verify("secret-other", headers[signature.TIMESTAMP_HEADER],
                         headers[signature.SIGNATURE_HEADER], body)


def test_a_missing_secret_fails_the_attempt_with_the_clear_error(router, rpc, router_store):
    agency, code, ref = _names()  # neither a file nor a variable of that name
    inbox = Inbox()
    receiver = CallbackReceiver(inbox, "whatever").start()
    try:
        _route(rpc, agency, receiver.url, ref)
        publish(router.amqp_uri, [submitted(code, agency)])
        # the attempt is counted when leased, its error once recorded: wait for the record
        row = wait_for(lambda: [r for r in deliveries(router_store, code) if r["attempts"] >= 1 and r["last_error"]],
                       what="a failed attempt")[0]
    finally:
        receiver.stop()
    assert row["status"] in ("pending", "dead") and row["last_error"] == "http: the route's secret is not configured"
    assert inbox.received == []


def test_secret_status_names_the_source_and_never_the_secret(router, rpc, secrets_dir):
    agency, _, ref = _names()
    _write_secret(secrets_dir, ref, "status-secret-value")
    _write_secret(secrets_dir, f"{ref}_PREVIOUS", "status-previous-value")
    _route(rpc, agency, "http://127.0.0.1:9/cb", ref)
    done = run_ops(router.amqp_uri, "secret-status", agency)
    assert done.returncode == 0, done.stderr
    assert "status-secret-value" not in done.stdout and "status-previous-value" not in done.stdout
    status = json.loads(done.stdout)
    assert status["source"] == "file" and 0 <= status["file_age_s"] < 120
    assert status["previous"]["source"] == "file" and status["secret_ref"] == ref

    os.remove(secrets_dir / f"{ref}_PREVIOUS")  # the overlap ends
    env_agency, missing_agency = _names()[0], _names()[0]
    _route(rpc, env_agency, "http://127.0.0.1:9/cb", SECRET_NAME)  # only in the router's environment
    _route(rpc, missing_agency, "http://127.0.0.1:9/cb", _names()[2])
    assert rpc.secret_status(agency)["previous"] is None
    assert rpc.secret_status(env_agency)["source"] == "env"
    assert rpc.secret_status(missing_agency)["source"] == "missing"
    unknown = run_ops(router.amqp_uri, "secret-status", "NO-SUCH-AGENCY")
    assert unknown.returncode == 1 and "route_not_found" in unknown.stderr
