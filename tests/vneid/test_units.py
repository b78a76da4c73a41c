"""Unit tests of the VNeID pieces that need no running system: the pure rules of
``domain/oidc.py``, the relying party's JWKS refetch limit (with a fake provider), the
settings that refuse unsafe algorithms, and dossier's assurance check."""

from __future__ import annotations

import time

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from portal_common.errors import Conflict, Forbidden, Unauthorized
from services.dossier.domain import assurance
from services.identity import settings as identity_settings
from services.identity.adapters.vneid import VneidProvider
from services.identity.domain import oidc
from services.identity.settings import VneidSettings

ISSUER = "http://provider.test"
CCCD = "001090123456"


def test_assurance_levels_map_and_unknown_acr_is_refused():
    assert oidc.assurance_level("1") == 1 and oidc.assurance_level("2") == 2
    for bad in (None, "3", "", "0"):
        with pytest.raises(Unauthorized):
            oidc.assurance_level(bad)


def test_person_needs_the_same_subject_in_userinfo_and_a_valid_cccd():
    claims = {"sub": "s1", "cccd": CCCD, "name": "Nguyễn Văn A", "birthdate": "1990-01-02", "acr": "2",
              "gender": "male", "phone_number": "0912345678"}
    who = oidc.person(claims, {"sub": "s1"})
    assert (who["cccd"], who["level"], who["role"], who["date_of_birth"].year) == (CCCD, 2, "citizen", 1990)
    with pytest.raises(Unauthorized):
        oidc.person(claims, {"sub": "someone-else"})
    with pytest.raises(Unauthorized):
        oidc.person({**claims, "cccd": "12345"}, None)
    org = oidc.person({**claims, "account_type": "organization", "tax_code": "0101234567",
                       "organization_name": "Công ty TNHH Thử"}, None)
    assert (org["role"], oidc.identifier(org)) == ("business", "0101234567")


def test_link_rules_never_let_a_claim_take_an_account():
    assert oidc.link_decision({"id": 1}, None) == "signin"
    assert oidc.link_decision(None, None) == "create"
    assert oidc.link_decision(None, {"id": 2}) == "link_required"
    problem = oidc.link_required("tok", {"phone": "0912345678", "password_hash": None}, 600)
    assert isinstance(problem, Conflict) and problem.details["proof_methods"] == ["otp"]


def test_id_token_extra_checks_azp_and_age():
    now = time.time()
    oidc.check_id_token({"aud": "me", "iat": now}, "me", now)
    with pytest.raises(Unauthorized):
        oidc.check_id_token({"aud": ["me", "other"], "iat": now}, "me", now)
    oidc.check_id_token({"aud": ["me", "other"], "azp": "me", "iat": now}, "me", now)
    with pytest.raises(Unauthorized):
        oidc.check_id_token({"aud": "me", "iat": now - 3600}, "me", now)


def test_logout_token_rules():
    good = {"events": {oidc.BACKCHANNEL_EVENT: {}}, "sub": "s", "jti": "j"}
    oidc.check_logout_token(good)
    for bad in ({**good, "nonce": "n"}, {**good, "events": {}}, {k: v for k, v in good.items() if k != "sub"},
                {k: v for k, v in good.items() if k != "jti"}):
        with pytest.raises(Unauthorized):
            oidc.check_logout_token(bad)


def test_unsafe_algorithms_stop_the_service(monkeypatch):
    for algs in ("none", "ES256,HS256", "HS512"):
        monkeypatch.setenv("VNEID_ID_TOKEN_ALGS", algs)
        with pytest.raises(ValueError):
            identity_settings.load_vneid()


class FakeProvider:
    """A provider's discovery and JWKS over a fake ``requests`` session, counting JWKS fetches."""

    class Answer:
        def __init__(self, body):
            self.status_code, self._body = 200, body

        def json(self):
            return self._body

    def __init__(self):
        self.key = ECKey.generate_key("P-256", auto_kid=True)
        self.jwks_calls = 0
        self.delay = 0.0

    def get(self, url, timeout=None, **kwargs):
        if url.endswith("/.well-known/openid-configuration"):
            return self.Answer({"issuer": ISSUER, "authorization_endpoint": f"{ISSUER}/authorize",
                                "token_endpoint": f"{ISSUER}/token", "jwks_uri": f"{ISSUER}/jwks"})
        self.jwks_calls += 1
        time.sleep(self.delay)  # a provider that takes its time: concurrent callers overlap
        return self.Answer(KeySet([self.key]).as_dict(private=False))

    def id_token(self, key=None, **claims) -> str:
        key = key or self.key
        now = int(time.time())
        body = {"iss": ISSUER, "aud": "me", "sub": "s", "iat": now, "exp": now + 300, "nonce": "n", **claims}
        return jwt.encode({"alg": "ES256", "kid": key.kid}, body, key, algorithms=["ES256"])


def _relying_party(fake: FakeProvider, interval: float = 60.0) -> VneidProvider:
    return VneidProvider(VneidSettings(issuer=ISSUER, client_id="me", client_secret="x",
                                       redirect_uris=("http://rp/cb",), jwks_refetch_s=interval), http=fake)


def test_unknown_kids_refetch_the_jwks_at_most_once_per_interval():
    fake = FakeProvider()
    rp = _relying_party(fake)
    assert rp.verify_id_token(fake.id_token(), "n")["sub"] == "s"
    assert fake.jwks_calls == 1
    for _ in range(20):  # a flood of made-up key ids
        stranger = ECKey.generate_key("P-256", auto_kid=True)
        with pytest.raises(Unauthorized):
            rp.verify_id_token(fake.id_token(key=stranger), "n")
    assert fake.jwks_calls == 1  # within the interval: no refetch at all


def test_a_rotated_key_is_fetched_when_the_interval_allows():
    fake = FakeProvider()
    rp = _relying_party(fake, interval=0.0)
    rp.verify_id_token(fake.id_token(), "n")
    fake.key = ECKey.generate_key("P-256", auto_kid=True)  # the provider rotates
    assert rp.verify_id_token(fake.id_token(), "n")["sub"] == "s"
    assert fake.jwks_calls == 2


def test_wrong_nonce_and_audience_are_refused_by_the_relying_party():
    fake = FakeProvider()
    rp = _relying_party(fake)
    with pytest.raises(Unauthorized):
        rp.verify_id_token(fake.id_token(), "another-nonce")
    with pytest.raises(Unauthorized):
        rp.verify_id_token(fake.id_token(aud="someone-else"), "n")


def test_dossier_assurance_check():
    assurance.require_level({"min_assurance_level": None}, None)
    assurance.require_level({"min_assurance_level": 2}, "2")
    with pytest.raises(Forbidden) as refused:
        assurance.require_level({"min_assurance_level": 2}, "1")
    assert refused.value.code == "assurance_level_too_low"
    with pytest.raises(Forbidden):
        assurance.require_level({"min_assurance_level": 1}, None)


def test_concurrent_first_verifications_share_one_fetch():
    import threading

    fake = FakeProvider()
    fake.delay = 0.2
    rp = _relying_party(fake)
    token = fake.id_token()
    outcomes: list = []

    def verify():
        try:
            outcomes.append(rp.verify_id_token(token, "n")["sub"])
        except Exception as exc:  # recorded: the assertion below names it
            outcomes.append(repr(exc))

    threads = [threading.Thread(target=verify) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == ["s"] * 8
    assert fake.jwks_calls == 1


def test_the_launcher_points_identity_at_the_stand_in_only_with_local_adapters(monkeypatch):
    from deploy.launcher import STAND_INS, LocalSystem

    for name in [k for k in __import__("os").environ if k.startswith("VNEID_") or k == "PORTAL_PORT"]:
        monkeypatch.delenv(name)
    local = LocalSystem("postgresql://x/db", "amqp://x", 8123, extra_env={"LOCAL_ADAPTERS": "yes",
                                                                        "VNEID_STANDIN_PORT": "18090"})
    env = local.env("identity")
    assert env["VNEID_ISSUER"] == "http://127.0.0.1:18090" and "vneid" in STAND_INS
    assert "http://127.0.0.1:8080/dang-nhap/vneid" in env["VNEID_REDIRECT_URIS"].split(",")
    assert env["VNEID_BACKCHANNEL_LOGOUT_URI"] == "http://127.0.0.1:8123/api/v1/auth/vneid/backchannel-logout"
    off = LocalSystem("postgresql://x/db", "amqp://x", 8123, extra_env={"LOCAL_ADAPTERS": "no"})
    assert "VNEID_ISSUER" not in off.env("identity")


def test_each_local_system_gets_a_stand_in_port_of_its_own_unless_one_is_asked_for(monkeypatch):
    from deploy.launcher import LocalSystem

    monkeypatch.delenv("VNEID_STANDIN_PORT", raising=False)
    first, second = (LocalSystem("postgresql://x/db", "amqp://x", 8123, extra_env={"LOCAL_ADAPTERS": "yes"})
                     for _ in range(2))
    ports = {s.env(name)["VNEID_STANDIN_PORT"] for s in (first, second) for name in ("identity", "vneid")}
    assert len(ports) == 2 and "8090" not in ports  # two systems on one machine never share one
    assert first.env("identity")["VNEID_ISSUER"] == f"http://127.0.0.1:{first.env('vneid')['VNEID_STANDIN_PORT']}"
    asked = LocalSystem("postgresql://x/db", "amqp://x", 8123,
                        extra_env={"LOCAL_ADAPTERS": "yes", "VNEID_STANDIN_PORT": "8090"})
    assert asked.env("identity")["VNEID_STANDIN_PORT"] == "8090"
