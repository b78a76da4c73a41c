"""The gateway's token check fails closed: until its first read of identity's revocations has
succeeded, a signed-in request is answered 503 ``revocations_unavailable`` (a signed-out token
must never pass because identity was slow to answer), and it lets tokens through once the read
has come in, still refusing the revoked ones."""

from __future__ import annotations

import datetime
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


# -- tokens verified once are remembered, never beyond what verifying again would allow ------


class CountingKeySet(tokens.KeySet):
    """A key set that counts the signature checks it really makes."""

    def __init__(self, jwks: dict):
        super().__init__(lambda: jwks)
        self.load(jwks)
        self.signature_checks = 0

    def _verify_signed(self, token: str):
        self.signature_checks += 1
        return super()._verify_signed(token)


def test_a_session_s_next_requests_skip_the_signature_check():
    issuer = Issuer()
    keyset = CountingKeySet(issuer.jwks)
    token = issuer.token(sub="acc-7")
    first, again = keyset.verify(token), keyset.verify(token)
    assert first == again and again.account_id == "acc-7"
    assert keyset.signature_checks == 1
    keyset.verify(issuer.token(sub="acc-7"))  # another token of the same account is checked
    assert keyset.signature_checks == 2


def test_a_remembered_token_is_refused_once_it_expires(monkeypatch):
    issuer = Issuer()
    keyset = CountingKeySet(issuer.jwks)
    token = issuer.token(exp_in=60)
    keyset.verify(token)
    later = time.time() + 60 + tokens.LEEWAY_S + 1
    monkeypatch.setattr(tokens.time, "time", lambda: later)
    monkeypatch.setattr(tokens.jwt.api_jwt, "datetime", _frozen_datetime(later))
    with pytest.raises(Unauthorized) as refused:
        keyset.verify(token)
    assert refused.value.code == "token_expired"
    assert keyset.signature_checks == 2


def test_a_remembered_token_is_refused_once_its_key_is_withdrawn():
    issuer, successor = Issuer(), Issuer()
    keyset = CountingKeySet(issuer.jwks)
    token = issuer.token()
    keyset.verify(token)
    keyset.load({"keys": [dict(successor.jwks["keys"][0], kid="next-key")]})  # the old key is gone
    with pytest.raises(Unauthorized) as refused:
        keyset.verify(token)
    assert refused.value.code == "invalid_token"


def test_a_token_under_a_replaced_key_of_the_same_kid_is_checked_again():
    issuer, impostor = Issuer(), Issuer()  # both publish "test-key"
    keyset = CountingKeySet(issuer.jwks)
    token = issuer.token()
    keyset.verify(token)
    keyset.load(impostor.jwks)
    with pytest.raises(Unauthorized):
        keyset.verify(token)
    assert keyset.signature_checks == 2


def test_tampered_and_invalid_tokens_are_never_remembered():
    issuer = Issuer()
    keyset = CountingKeySet(issuer.jwks)
    token = issuer.token()
    head, body, signature = token.split(".")
    forged = ".".join((head, body, ("A" if signature[0] != "A" else "B") + signature[1:]))
    for _ in range(2):
        with pytest.raises(Unauthorized):
            keyset.verify(forged)
    assert keyset.signature_checks == 2 and not keyset._verified


def test_the_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(tokens, "VERIFIED_KEPT", 3)
    issuer = Issuer()
    keyset = CountingKeySet(issuer.jwks)
    for _ in range(10):
        keyset.verify(issuer.token())
    assert 1 <= len(keyset._verified) <= 3


def test_a_remembered_token_is_still_refused_after_its_session_is_revoked(make_keys):
    issuer = Issuer()
    session = "5c0d3c1e-1a3e-4a57-9d55-2f4d1f7b9a10"
    keys = make_keys(FlakyIdentity(issuer, failures=0))
    header = "Bearer " + issuer.token(sub="acc-3", sid=session)
    assert _eventually_authenticates(keys, header).account_id == "acc-3"
    assert keys.authenticate(header).account_id == "acc-3"  # remembered now
    keys.revocations.revoke_session(session, time.time())
    with pytest.raises(Unauthorized) as refused:
        keys.authenticate(header)
    assert refused.value.code == "token_revoked"


def _frozen_datetime(at: float) -> type[datetime.datetime]:
    """PyJWT's ``datetime`` with ``now`` fixed at ``at`` (epoch seconds)."""

    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.datetime.fromtimestamp(at, tz)

    return Frozen
