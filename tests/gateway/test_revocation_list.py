"""The gateway's list of revoked sessions and accounts, in plain Python: what it refuses, and
that it forgets an entry once every token it refused has expired."""

from __future__ import annotations

import datetime as dt

from gateway.http.revocations import MARGIN_S, RevocationList

T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def claims(sub="acc-1", sid="s-1", iat=T0 - 30):
    out = {"sub": sub, "iat": int(iat)}
    if sid is not None:
        out["sid"] = sid
    return out


def envelope(event_type, data, at=T0):
    return {"event_type": event_type, "schema_version": 2, "data": data,
            "occurred_at": dt.datetime.fromtimestamp(at, dt.UTC).isoformat()}


def test_a_revoked_session_is_refused_and_other_sessions_are_not():
    revoked = RevocationList(600, clock=Clock())
    revoked.revoke_session("s-1", T0)
    assert revoked.is_revoked(claims(sid="s-1"))
    assert not revoked.is_revoked(claims(sid="s-2"))
    assert not revoked.is_revoked(claims(sid=None))


def test_entries_are_forgotten_after_one_token_lifetime():
    clock = Clock()
    revoked = RevocationList(600, clock=clock)
    revoked.revoke_session("s-1", T0)
    revoked.revoke_account("acc-2", before=T0, revoked_at=T0)
    clock.now = T0 + 600 + MARGIN_S - 1
    assert revoked.is_revoked(claims(sid="s-1")) and revoked.is_revoked(claims(sub="acc-2", sid=None))
    assert len(revoked) == 2
    clock.now = T0 + 600 + MARGIN_S + 1
    assert not revoked.is_revoked(claims(sid="s-1"))
    assert not revoked.is_revoked(claims(sub="acc-2", sid=None))
    assert len(revoked) == 0
    revoked.revoke_session("s-3", clock.now)  # a write purges what expired
    assert set(revoked._sessions) == {"s-3"} and not revoked._accounts


def test_an_old_revocation_is_not_recorded_at_all():
    revoked = RevocationList(600, clock=Clock())
    revoked.revoke_session("s-1", T0 - 600 - MARGIN_S - 1)
    assert len(revoked) == 0 and not revoked.is_revoked(claims(sid="s-1"))


def test_an_account_cutoff_spares_tokens_issued_after_it():
    revoked = RevocationList(600, clock=Clock())
    revoked.revoke_account("acc-1", before=T0 - 10)
    assert revoked.is_revoked(claims(sid=None, iat=T0 - 11))
    assert not revoked.is_revoked(claims(sid=None, iat=T0 - 10))
    assert not revoked.is_revoked(claims(sub="acc-9", sid=None, iat=T0 - 11))
    assert revoked.is_revoked({"sub": "acc-1"})  # no iat: no way to tell it is newer
    revoked.revoke_account("acc-1", before=T0 - 20)  # an earlier cutoff does not undo a later one
    assert revoked.is_revoked(claims(sid=None, iat=T0 - 11))


def test_signed_out_events():
    revoked = RevocationList(600, clock=Clock(T0 + 1))
    assert revoked.apply_event(envelope("SignedOut", {"account_id": "acc-1", "reason": "logout",
                                                      "session_ids": ["s-1"], "all_sessions": False}, T0 + 0.7))
    assert revoked.is_revoked(claims(sid="s-1"))
    assert not revoked.is_revoked(claims(sid="s-2", iat=T0 - 100))  # one session only
    assert revoked.apply_event(envelope("SignedOut", {"account_id": "acc-1", "reason": "logout",
                                                      "session_ids": ["s-2"], "all_sessions": True}, T0 + 0.7))
    assert revoked.is_revoked(claims(sid="s-7", iat=T0 - 1))  # every session, even one not listed
    assert not revoked.is_revoked(claims(sid="s-8", iat=T0))  # the same second: only the listed ones
    # version 1 names no session: nothing to refuse
    assert not revoked.apply_event(envelope("SignedOut", {"account_id": "acc-3", "reason": "logout"}))
    assert not revoked.apply_event({"event_type": "SignedOut"}) and not revoked.apply_event("junk")


def test_password_and_agency_system_events():
    revoked = RevocationList(600, clock=Clock(T0 + 1))
    revoked.apply_event(envelope("PasswordChanged", {"account_id": "acc-1", "reason": "change",
                                                     "session_ids": ["s-1"]}, T0 + 0.5))
    assert revoked.is_revoked(claims(sid="s-1", iat=T0))
    assert revoked.is_revoked(claims(sid="s-2", iat=T0 - 1))
    assert not revoked.is_revoked(claims(sid="s-3", iat=T0))  # a sign-in right after the change
    revoked.apply_event(envelope("PasswordChanged", {"account_id": "acc-2", "reason": "reset"}, T0))  # v1
    assert revoked.is_revoked(claims(sub="acc-2", sid=None, iat=T0 - 1))
    revoked.apply_event(envelope("AgencySystemRevoked", {"account_id": "acc-4", "client_id": "as_1",
                                                         "agency_code": "X"}, T0 + 0.5))
    assert revoked.is_revoked(claims(sub="acc-4", sid=None, iat=T0))  # it can get no new token


def test_loading_identitys_snapshot():
    clock = Clock(T0 + 5)
    revoked = RevocationList(300, clock=clock)
    revoked.load({"ttl": 600, "sessions": [{"session_id": "s-1", "account_id": "acc-1", "revoked_at": T0}],
                  "accounts": [{"account_id": "acc-2", "before": T0}]})
    assert revoked.token_ttl_s == 600  # identity's lifetime, when longer than the configured one
    assert revoked.is_revoked(claims(sid="s-1")) and revoked.is_revoked(claims(sub="acc-2", sid=None))
    clock.now = T0 + 600 + MARGIN_S + 1
    assert len(revoked) == 0
    revoked.load({})  # an empty answer is fine


def test_a_disabled_staff_account():
    revoked = RevocationList(600, clock=Clock(T0 + 1))
    data = {"account_id": "acc-5", "username": "cb.a", "role": "officer", "agency_code": "X", "reason": "left"}
    assert revoked.apply_event(envelope("StaffAccountDisabled", data, T0 + 0.5))
    assert revoked.is_revoked(claims(sub="acc-5", sid="s-1", iat=T0 - 1))
    assert revoked.is_revoked(claims(sub="acc-5", sid=None, iat=T0 - 300))
    assert not revoked.is_revoked(claims(sub="acc-5", sid="s-9", iat=T0))  # a sign-in after a quick reinstatement
    assert not revoked.is_revoked(claims(sub="acc-6", sid=None, iat=T0 - 1))
    assert not revoked.apply_event(envelope("StaffAccountReinstated", data, T0 + 0.8))  # it revokes nothing
    assert revoked.is_revoked(claims(sub="acc-5", sid=None, iat=T0 - 1))
