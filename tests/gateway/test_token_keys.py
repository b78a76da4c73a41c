"""The gateway's token check fails closed: until its first read of identity's revocations has
succeeded, a signed-in request is answered 503 ``revocations_unavailable`` (a signed-out token
must never pass because identity was slow to answer), and it lets tokens through once the read
has come in, still refusing the revoked ones."""

from __future__ import annotations

import time
from types import SimpleNamespace

import eventlet
import pytest

from gateway.http import tokens
from gateway.http.tokens import TokenKeys
from portal_common.errors import Unauthorized, Unavailable
from tests.gateway.test_rules import Issuer


class FlakyIdentity:
    """Identity's two reads, the revocations one failing ``failures`` times first."""

    def __init__(self, issuer: Issuer, failures: int, snapshot: dict | None = None):
        self.issuer, self.failures, self.calls = issuer, failures, 0
        self.snapshot = snapshot or {}

    def jwks(self, config) -> dict:
        return self.issuer.jwks

    def revocations(self, config) -> dict:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("identity is not there yet")
        return self.snapshot


@pytest.fixture
def make_keys(monkeypatch):
    monkeypatch.setattr(tokens, "REVOCATIONS_RETRY_S", 0.05)
    monkeypatch.setattr(tokens, "REVOCATIONS_RELOAD_AFTER_S", 0.05)
    started = []

    def make(identity: FlakyIdentity) -> TokenKeys:
        keys = TokenKeys()
        keys.container = SimpleNamespace(config={})
        monkeypatch.setattr(keys, "_fetch_jwks", identity.jwks)
        monkeypatch.setattr(keys, "_fetch_revocations", identity.revocations)
        keys.setup()
        keys.start()
        started.append(keys)
        return keys

    yield make
    for keys in started:
        keys.stop()


def _eventually_authenticates(keys: TokenKeys, header: str):
    deadline = time.monotonic() + 10
    while True:
        try:
            return keys.authenticate(header)
        except Unavailable:
            if time.monotonic() > deadline:
                raise
            eventlet.sleep(0.05)


def test_a_token_waits_for_nothing_and_is_refused_while_revocations_cannot_be_read(make_keys):
    issuer = Issuer()
    keys = make_keys(FlakyIdentity(issuer, failures=10**6))
    eventlet.sleep(0.2)  # the first read has failed
    with pytest.raises(Unavailable) as refused:
        keys.authenticate("Bearer " + issuer.token())
    assert refused.value.code == "revocations_unavailable"
    assert refused.value.details == {"retry_after": 1}
    assert keys.revocations_loaded is False
    with pytest.raises(Unauthorized):  # a bad token is still a 401, not a 503
        keys.authenticate("Bearer not-a-token")


def test_tokens_pass_once_identity_answers_and_revoked_ones_stay_refused(make_keys):
    issuer = Issuer()
    revoked_session = "2b7e1c1e-9a3e-4a57-9d55-2f4d1f7b9a10"
    snapshot = {"sessions": [{"session_id": revoked_session, "account_id": "acc-1",
                              "revoked_at": time.time()}], "accounts": []}
    identity = FlakyIdentity(issuer, failures=3, snapshot=snapshot)
    keys = make_keys(identity)
    principal = _eventually_authenticates(keys, "Bearer " + issuer.token(sub="acc-2"))
    assert principal.account_id == "acc-2" and identity.calls >= 4
    with pytest.raises(Unauthorized) as refused:
        keys.authenticate("Bearer " + issuer.token(sub="acc-1", sid=revoked_session))
    assert refused.value.code == "token_revoked"
