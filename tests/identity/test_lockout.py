"""Lockout with back-off, per account and per source address, driven through the sign-in
flow against the real identity schema (small thresholds, several source addresses)."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from portal_common.errors import TooManyRequests, Unauthorized
from portal_common.eventstore import EventContext, EventStore
from services.identity import adapters as identity_adapters
from services.identity import settings as identity_settings
from services.identity.application import attempts, signin
from services.identity.domain import passwords
from services.identity.domain.lockout import LockoutPolicy
from tests.support.accounts import random_person

pytestmark = pytest.mark.integration
PASSWORD = "Dung-mat-khau-9"


@pytest.fixture(scope="module")
def flow(migrated_database):
    from portal_common.db import Database

    db = Database(migrated_database, "identity", size=4)
    settings = dataclasses.replace(
        identity_settings.load(), local_adapters=True, carrier_adapter="local", bhxh_adapter="local",
        sms_adapter="local", account_lockout=LockoutPolicy(3, 60, 600), source_lockout=LockoutPolicy(6, 30, 120))
    yield db, EventStore(db), identity_adapters.build(settings, db), settings
    db.close()


def _account(db) -> dict:
    person = random_person()
    account_id = str(uuid.uuid4())
    with db.transaction() as cur:
        cur.execute("INSERT INTO accounts (id, role, identifier, full_name, phone, password_hash, methods) "
                    "VALUES (%s, 'citizen', %s, 'Lê Văn C', %s, %s, '{mobile,password}')",
                    (account_id, person["cccd"], person["phone"], passwords.hash_password(PASSWORD)))
    return {"id": account_id, **person}


def _try(flow, cccd: str, password: str, ip: str):
    db, store, adapters, settings = flow
    context = {"client_ip": ip}
    return signin.start_password(db, store, adapters, settings, {"cccd": cccd, "password": password}, context,
                                 EventContext())


def _lock_seconds(db, scope: str, key: str) -> float:
    with db.transaction() as cur:
        cur.execute("SELECT extract(epoch FROM locked_until - now()) AS s FROM signin_failures "
                    "WHERE scope = %s AND key = %s", (scope, key))
        return float(cur.fetchone()["s"])


def _unlock(db, scope: str, key: str) -> None:
    with db.transaction() as cur:
        cur.execute("UPDATE signin_failures SET locked_until = now() - interval '1 second' "
                    "WHERE scope = %s AND key = %s", (scope, key))


def test_account_lockout_backs_off(flow):
    db = flow[0]
    acc = _account(db)
    ips = iter(f"10.1.{i}.{j}" for i in range(10) for j in range(250))  # never the same source twice
    for round_, expected in enumerate((60, 120, 240)):
        for _ in range(3):
            with pytest.raises(Unauthorized):
                _try(flow, acc["cccd"], "Sai-mat-khau-1", next(ips))
        with pytest.raises(TooManyRequests) as err:
            _try(flow, acc["cccd"], PASSWORD, next(ips))  # locked: the right password does not help
        assert err.value.code == "signin_locked"
        assert expected - 5 < _lock_seconds(db, "account", acc["id"]) <= expected, round_
        _unlock(db, "account", acc["id"])
    assert _try(flow, acc["cccd"], PASSWORD, next(ips))["next"] == "otp"
    with db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM events WHERE stream_id = %s AND event_type = 'AccountLocked'",
                    (f"account-{acc['id']}",))
        assert cur.fetchone()["n"] == 3


def _fail_twice(flow, cccd: str, ip: str) -> None:
    """Two sign-ins with a wrong password, each refused."""
    for _ in range(2):
        with pytest.raises(Unauthorized):
            _try(flow, cccd, "Sai-mat-khau-1", ip)


def test_a_success_resets_the_account_count(flow):
    db = flow[0]
    acc = _account(db)
    _fail_twice(flow, acc["cccd"], "10.2.0.1")
    store = flow[1]
    with db.transaction() as cur:
        cur.execute("SELECT * FROM accounts WHERE id = %s", (acc["id"],))
        attempts.succeeded(cur, store, cur.fetchone(), "password", {"client_ip": "10.2.0.1"}, EventContext())
    _fail_twice(flow, acc["cccd"], "10.2.0.2")
    assert _try(flow, acc["cccd"], PASSWORD, "10.2.0.3")["next"] == "otp"  # 2 + 2 failures, never 3 in a row


def test_source_lockout_spans_accounts(flow):
    ip = f"10.3.{uuid.uuid4().int % 250}.9"
    victims = [_account(flow[0]) for _ in range(6)]
    for victim in victims:  # one failure each: no account reaches its threshold
        with pytest.raises(Unauthorized):
            _try(flow, victim["cccd"], "Sai-mat-khau-1", ip)
    with pytest.raises(TooManyRequests):
        _try(flow, victims[0]["cccd"], PASSWORD, ip)  # the address is locked
    assert _try(flow, victims[0]["cccd"], PASSWORD, "10.4.0.1")["next"] == "otp"  # elsewhere it works
    assert 25 < _lock_seconds(flow[0], "source", ip) <= 30


def test_old_failures_are_forgotten(flow):
    db = flow[0]
    acc = _account(db)
    _fail_twice(flow, acc["cccd"], "10.5.0.1")
    with db.transaction() as cur:
        cur.execute("UPDATE signin_failures SET last_failure_at = now() - interval '16 minutes' "
                    "WHERE scope = 'account' AND key = %s", (acc["id"],))
    with pytest.raises(Unauthorized):
        _try(flow, acc["cccd"], "Sai-mat-khau-1", "10.5.0.2")
    assert _try(flow, acc["cccd"], PASSWORD, "10.5.0.3")["next"] == "otp"


def test_exempt_sources_are_not_locked_as_a_whole(flow):
    db, store, adapters, settings = flow
    exempt = (flow[0], store, adapters, dataclasses.replace(settings, source_lockout_exempt=("10.9.0.0/16",)))
    victims = [_account(db) for _ in range(7)]
    for victim in victims:  # seven accounts, one failure each, from one exempt address (a proxy, say)
        with pytest.raises(Unauthorized):
            _try(exempt, victim["cccd"], "Sai-mat-khau-1", "10.9.1.1")
    assert _try(exempt, victims[0]["cccd"], PASSWORD, "10.9.1.1")["next"] == "otp"
    assert attempts.source_exempt(settings, "127.0.0.1") and attempts.source_exempt(settings, "::1")
    assert not attempts.source_exempt(settings, "10.9.1.1") and not attempts.source_exempt(settings, "unknown")
