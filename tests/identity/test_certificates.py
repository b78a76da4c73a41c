"""Digital-signature SIM / USB token registration and sign-in over HTTP, with a test CA:
success for citizens and businesses, replayed challenge, bad signature, untrusted CA,
expired certificate, wrong key usage, wrong holder; revocation lists imported through the
``add_crl`` RPC (and the admin command) refusing revoked certificates, and the revocation
policies on the pure domain function."""

from __future__ import annotations

import base64
import datetime as dt
import random
import subprocess
import sys
import uuid

import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from portal_common.errors import Conflict, InvalidInput
from services.identity.domain import certificates as certs
from tests.identity.conftest import assert_problem
from tests.identity.pki import NOW, Pki, crl_der, crl_pem, make_ca, make_crl, make_leaf
from tests.support import accounts

pytestmark = pytest.mark.integration


def _challenge(api, purpose: str) -> dict:
    reply = api("POST", "/api/v1/auth/challenge", {"purpose": purpose})
    assert reply.status == 201 and reply["challenge"], reply
    return reply.body


def _proof(api, pki, leaf, purpose: str, sign_text: str | None = None, chain=None) -> dict:
    ch = _challenge(api, purpose)
    return {"certificate_pem": leaf.pem, "chain_pem": pki.chain if chain is None else chain,
            "challenge_id": ch["challenge_id"], "signature": leaf.sign(sign_text or ch["challenge"])}


def _tax_code() -> str:
    return f"01{random.randrange(10**8):08d}"


def test_citizen_registers_and_signs_in_with_a_usb_token(api, pki):
    cccd = accounts.random_person()["cccd"]
    leaf = pki.citizen(cccd, cn="TRAN THI B")
    reg = api("POST", "/api/v1/auth/register/certificate",
              {**_proof(api, pki, leaf, "register"), "account_type": "citizen", "certificate_kind": "usb_token"})
    assert reg.status == 201, reg
    me = api("GET", "/api/v1/me", token=reg["access_token"])
    assert me["cccd"] == cccd and me["full_name"] == "TRAN THI B" and me["methods"] == ["certificate"]
    login = api("POST", "/api/v1/auth/login", {"method": "certificate", **_proof(api, pki, leaf, "login")})
    assert login.status == 200 and login["account_id"] == reg["account_id"] and login["refresh_token"]
    # a renewed certificate for the same CCCD from the trusted CA also signs in
    renewed = pki.citizen(cccd, key_kind="rsa")
    again = api("POST", "/api/v1/auth/login", {"method": "certificate", **_proof(api, pki, renewed, "login")})
    assert again.status == 200 and again["account_id"] == reg["account_id"]


def test_business_registers_with_a_signature_sim(api, pki, identity_db):
    tax = _tax_code()
    leaf = pki.business(tax)
    body = {**_proof(api, pki, leaf, "register"), "account_type": "business", "certificate_kind": "sim",
            "business_name": "Công ty TNHH Thử Nghiệm", "representative_cccd": accounts.random_person()["cccd"]}
    reg = api("POST", "/api/v1/auth/register/certificate", body)
    assert reg.status == 201 and reg["role"] == "business", reg
    me = api("GET", "/api/v1/me", token=reg["access_token"])
    assert me["tax_code"] == tax and me["representative_cccd"] == body["representative_cccd"]
    with identity_db.transaction() as cur:
        cur.execute("SELECT event_type, payload FROM events WHERE stream_id = %s ORDER BY version",
                    (f"account-{reg['account_id']}",))
        events = cur.fetchall()
    assert [e["event_type"] for e in events] == ["BusinessRegistered", "AccountVerified", "SignInSucceeded"]
    assert events[0]["payload"]["certificate_kind"] == "sim"
    # the same holder cannot register twice
    body2 = {**body, **_proof(api, pki, leaf, "register")}
    assert_problem(api("POST", "/api/v1/auth/register/certificate", body2), 409, "account_exists")


def test_a_business_needs_its_representative(api, pki):
    leaf = pki.business(_tax_code())
    body = {**_proof(api, pki, leaf, "register"), "account_type": "business"}
    assert_problem(api("POST", "/api/v1/auth/register/certificate", body), 422, "invalid_cccd")


def test_a_replayed_challenge_is_refused(api, pki):
    leaf = pki.citizen(accounts.random_person()["cccd"])
    proof = _proof(api, pki, leaf, "register")
    assert api("POST", "/api/v1/auth/register/certificate", proof).status == 201
    assert_problem(api("POST", "/api/v1/auth/register/certificate", proof), 401, "challenge_replayed")
    login = _proof(api, pki, leaf, "login")
    assert api("POST", "/api/v1/auth/login", {"method": "certificate", **login}).status == 200
    assert_problem(api("POST", "/api/v1/auth/login", {"method": "certificate", **login}), 401,
                   "challenge_replayed")


def test_a_challenge_is_single_use_even_when_the_attempt_fails(api, pki):
    leaf = pki.citizen(accounts.random_person()["cccd"])
    proof = _proof(api, pki, leaf, "register", sign_text="not the challenge")
    assert_problem(api("POST", "/api/v1/auth/register/certificate", proof), 401, "signature_invalid")
    ch = _challenge(api, "register")
    fixed = {**proof, "challenge_id": ch["challenge_id"], "signature": leaf.sign(ch["challenge"])}
    assert api("POST", "/api/v1/auth/register/certificate", fixed).status == 201
    retry = {**proof, "signature": leaf.sign("anything")}
    assert_problem(api("POST", "/api/v1/auth/register/certificate", retry), 401, "challenge_replayed")


def test_challenge_for_another_purpose_or_expired(api, pki, identity_db):
    leaf = pki.citizen(accounts.random_person()["cccd"])
    assert_problem(api("POST", "/api/v1/auth/register/certificate", _proof(api, pki, leaf, "login")), 401,
                   "challenge_invalid")
    proof = _proof(api, pki, leaf, "register")
    with identity_db.transaction() as cur:
        cur.execute("UPDATE challenges SET expires_at = now() - interval '1 second' WHERE id = %s",
                    (proof["challenge_id"],))
    assert_problem(api("POST", "/api/v1/auth/register/certificate", proof), 401, "challenge_expired")
    unknown = {**proof, "challenge_id": "6f1c1a10-0000-4000-8000-000000000001"}
    assert_problem(api("POST", "/api/v1/auth/register/certificate", unknown), 401, "challenge_invalid")


@pytest.mark.parametrize(("make", "code"), [
    (lambda pki, cccd: make_leaf(pki.stranger, f"CCCD:{cccd}"), "certificate_untrusted"),
    (lambda pki, cccd: pki.citizen(cccd, not_before=NOW - dt.timedelta(days=400),
                                   not_after=NOW - dt.timedelta(days=1)), "certificate_expired"),
    (lambda pki, cccd: pki.citizen(cccd, signing=False), "certificate_key_usage"),
    (lambda pki, cccd: make_leaf(pki.intermediate, "no identifier here"), "certificate_no_identifier"),
])
def test_refused_certificates(api, pki, make, code):
    leaf = make(pki, accounts.random_person()["cccd"])
    reg = api("POST", "/api/v1/auth/register/certificate", _proof(api, pki, leaf, "register"))
    assert_problem(reg, 422, code)
    login = api("POST", "/api/v1/auth/login", {"method": "certificate", **_proof(api, pki, leaf, "login")})
    assert_problem(login, 422, code)


def test_missing_intermediate_means_untrusted(api, pki):
    leaf = pki.citizen(accounts.random_person()["cccd"])
    reply = api("POST", "/api/v1/auth/register/certificate", _proof(api, pki, leaf, "register", chain=[]))
    assert_problem(reply, 422, "certificate_untrusted")


def test_signature_by_another_key(api, pki):
    cccd = accounts.random_person()["cccd"]
    leaf, impostor = pki.citizen(cccd), pki.citizen(cccd)
    ch = _challenge(api, "register")
    body = {"certificate_pem": leaf.pem, "chain_pem": pki.chain, "challenge_id": ch["challenge_id"],
            "signature": impostor.sign(ch["challenge"])}
    assert_problem(api("POST", "/api/v1/auth/register/certificate", body), 401, "signature_invalid")


def test_sign_in_for_a_holder_without_an_account(api, pki):
    leaf = pki.citizen(accounts.random_person()["cccd"])
    reply = api("POST", "/api/v1/auth/login", {"method": "certificate", **_proof(api, pki, leaf, "login")})
    assert_problem(reply, 401, "invalid_credentials")


def test_a_citizen_certificate_cannot_open_a_business_account(api, pki):
    leaf = pki.citizen(accounts.random_person()["cccd"])
    body = {**_proof(api, pki, leaf, "register"), "account_type": "business",
            "representative_cccd": accounts.random_person()["cccd"]}
    assert_problem(api("POST", "/api/v1/auth/register/certificate", body), 422, "certificate_wrong_holder")


@pytest.mark.parametrize("change", [
    {"certificate_pem": "x" * 30_000}, {"certificate_pem": "garbage"}, {"signature": "s" * 5000},
    {"challenge_id": "nope"}, {"chain_pem": ["a"] * 6}, {"account_type": "officer"},
    {"certificate_kind": "floppy"},
])
def test_hostile_certificate_bodies(api, pki, change):
    leaf = pki.citizen(accounts.random_person()["cccd"])
    body = {**_proof(api, pki, leaf, "register"), **change}
    reply = api("POST", "/api/v1/auth/register/certificate", body)
    assert 400 <= reply.status < 500 and reply.code in ("validation_failed", "certificate_invalid"), reply


def test_operators_cannot_trust_a_leaf_as_a_ca(api, pki):
    leaf = pki.citizen(accounts.random_person()["cccd"])
    assert_problem(api("POST", "/api/v1/dev/trusted-cas", {"certificate_pem": leaf.pem}), 422, "not_a_ca")


# -- revocation ---------------------------------------------------------------------------

@pytest.fixture
def own_pki(api) -> Pki:
    """A PKI of this test's own (its CRLs cannot disturb another test's), root trusted."""
    p = Pki(uuid.uuid4().hex[:12])
    assert api("POST", "/api/v1/dev/trusted-cas", {"certificate_pem": p.root_pem}).status == 201
    return p


@pytest.fixture(scope="module")
def identity_rpc(system, amqp_uri):
    with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=30) as cluster:
        yield cluster.identity


def _crl_rows(identity_db, pki: Pki) -> list[dict]:
    with identity_db.transaction() as cur:
        # every test PKI uses the same CA names: its own lists are those its CA keys signed
        cur.execute("SELECT issuer, crl_number, revoked_count FROM certificate_revocation_lists "
                    "WHERE signer_key IN (%s, %s)", (certs.key_id(pki.intermediate.cert),
                                                     certs.key_id(pki.root.cert)))
        return cur.fetchall()


def _register(api, pki, leaf):
    return api("POST", "/api/v1/auth/register/certificate",
               {**_proof(api, pki, leaf, "register"), "account_type": "citizen", "certificate_kind": "sim"})


def _login(api, pki, leaf):
    return api("POST", "/api/v1/auth/login", {"method": "certificate", **_proof(api, pki, leaf, "login")})


def test_a_revoked_certificate_can_no_longer_register_or_sign_in(api, own_pki, identity_rpc, identity_db):
    lost, kept, stolen = (own_pki.citizen(accounts.random_person()["cccd"]) for _ in range(3))
    assert _register(api, own_pki, lost).status == 201 and _register(api, own_pki, kept).status == 201
    out = identity_rpc.add_crl(crl_pem(own_pki.crl([lost, stolen], number=7)), own_pki.intermediate.pem)
    assert out["status"] == "imported" and out["crl_number"] == "7" and out["revoked_count"] == 2
    assert_problem(_login(api, own_pki, lost), 422, "certificate_revoked")
    assert_problem(_register(api, own_pki, stolen), 422, "certificate_revoked")
    assert _login(api, own_pki, kept).status == 200  # the same CA's other certificates still work
    assert _register(api, own_pki, own_pki.citizen(accounts.random_person()["cccd"])).status == 201
    with identity_db.transaction() as cur:
        cur.execute("SELECT payload FROM events WHERE event_type = 'CertificateRevocationListImported' "
                    "AND payload->>'issuer_id' = %s", (out["issuer_id"],))
        events = [r["payload"] for r in cur.fetchall()]
    assert events == [{k: out[k] for k in ("issuer", "issuer_id", "crl_number", "this_update", "next_update",
                                           "revoked_count")}]


def test_a_revoked_intermediate_refuses_its_leaves(api, own_pki, identity_rpc):
    leaf = own_pki.citizen(accounts.random_person()["cccd"])
    assert _register(api, own_pki, leaf).status == 201
    # the root is a trust anchor: its CRL needs no issuer certificate; the intermediate's
    # second CRL needs none either (kept from the first)
    assert identity_rpc.add_crl(crl_pem(own_pki.crl([], number=1)), own_pki.intermediate.pem)["status"] == "imported"
    assert identity_rpc.add_crl(crl_pem(own_pki.crl([], number=2)))["status"] == "imported"
    assert identity_rpc.add_crl(crl_pem(make_crl(own_pki.root, [own_pki.intermediate])))["revoked_count"] == 1
    assert_problem(_login(api, own_pki, leaf), 422, "certificate_revoked")


def test_a_crl_not_signed_by_a_trusted_ca_is_refused(own_pki, identity_rpc, identity_db):
    leaf = own_pki.citizen(accounts.random_person()["cccd"])
    forged = make_crl(own_pki.root, [leaf], signing_key=own_pki.stranger.key)  # trusted name, wrong key
    stranger = make_crl(own_pki.stranger, [leaf])
    impostor = make_ca(own_pki.intermediate.cert.subject.get_attributes_for_oid(
        certs.NameOID.COMMON_NAME)[0].value)  # same name as the intermediate, self-signed
    for crl, issuer in ((forged, None), (stranger, None), (own_pki.crl([leaf]), None),
                        (own_pki.crl([leaf]), impostor.pem)):
        with pytest.raises(InvalidInput) as refused:
            identity_rpc.add_crl(crl_pem(crl), issuer)
        assert refused.value.code == "crl_untrusted"
    assert _crl_rows(identity_db, own_pki) == []


def test_an_older_crl_is_refused_after_a_newer_one(own_pki, identity_rpc, identity_db):
    leaf = own_pki.citizen(accounts.random_person()["cccd"])
    newer = own_pki.crl([leaf], number=5)
    identity_rpc.add_crl(base64.b64encode(crl_der(newer)).decode(), own_pki.intermediate.pem)  # DER, base64
    assert identity_rpc.add_crl(crl_pem(newer))["status"] == "unchanged"  # the same list again: a no-op
    for older in (own_pki.crl([], number=4), own_pki.crl([], number=5, last_update=NOW)):
        with pytest.raises(Conflict) as refused:
            identity_rpc.add_crl(crl_pem(older))
        assert refused.value.code == "crl_not_newer"
    assert _crl_rows(identity_db, own_pki) == [
        {"issuer": own_pki.intermediate.cert.subject.rfc4514_string(), "crl_number": 5, "revoked_count": 1}]
    # without CRL numbers the issue dates decide
    root_crl = make_crl(own_pki.root, number=None)
    identity_rpc.add_crl(crl_pem(root_crl))
    with pytest.raises(Conflict):
        identity_rpc.add_crl(crl_pem(make_crl(own_pki.root, number=None, last_update=NOW - dt.timedelta(days=1))))


@pytest.mark.parametrize("garbage", [
    "garbage", "", "   ", base64.b64encode(b"\x30\x03\x02\x01\x01").decode(), "!!notbase64!!",
    "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n", None, 42,
])
def test_garbage_given_to_add_crl_is_refused_and_stores_nothing(identity_rpc, identity_db, garbage):
    with identity_db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM certificate_revocation_lists")
        before = cur.fetchone()["n"]
    with pytest.raises(InvalidInput) as refused:
        identity_rpc.add_crl(garbage)
    assert refused.value.code == "crl_invalid"
    with identity_db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM certificate_revocation_lists")
        assert cur.fetchone()["n"] == before


def test_a_certificate_is_not_a_crl(own_pki, identity_rpc):
    with pytest.raises(InvalidInput) as refused:
        identity_rpc.add_crl(own_pki.root_pem)
    assert refused.value.code == "crl_invalid"


def test_the_admin_command_imports_a_der_crl(api, own_pki, migrated_database, tmp_path, identity_db):
    leaf = own_pki.citizen(accounts.random_person()["cccd"])
    (tmp_path / "ca.crl").write_bytes(crl_der(own_pki.crl([leaf], number=3)))
    (tmp_path / "ca.pem").write_text(own_pki.intermediate.pem)
    env = {"DATABASE_URL": migrated_database, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "services.identity.admin", "add-crl", "--file",
                           str(tmp_path / "ca.crl"), "--issuer", str(tmp_path / "ca.pem")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "imported CRL of" in done.stdout and "1 revoked" in done.stdout
    assert_problem(_register(api, own_pki, leaf), 422, "certificate_revoked")
    (tmp_path / "bad.crl").write_bytes(b"not a crl")
    refused = subprocess.run([sys.executable, "-m", "services.identity.admin", "add-crl", "--file",
                              str(tmp_path / "bad.crl")], capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode == 1 and "crl_invalid" in refused.stderr


# -- revocation policies on the pure domain function ---------------------------------------

def _path(pki: Pki, leaf) -> list:
    return certs.verify_chain(leaf.cert, [pki.intermediate.cert], [pki.root.cert], NOW)


def _lists(pki: Pki, *crls) -> list:
    return [certs.revocation_list(crl, certs.crl_signer(crl, [pki.intermediate.cert, pki.root.cert]))
            for crl in crls]


@pytest.fixture(scope="module")
def offline_pki() -> Pki:
    return Pki()


def test_policy_off_checks_nothing(offline_pki):
    leaf = offline_pki.citizen("001099012345")
    assert certs.check_revocation(_path(offline_pki, leaf), _lists(offline_pki, offline_pki.crl([leaf])),
                                  "off", NOW) == []


def test_policy_if_available_checks_what_is_held(offline_pki):
    leaf, other = offline_pki.citizen("001099012345"), offline_pki.citizen("001099012346")
    path = _path(offline_pki, leaf)
    assert certs.check_revocation(path, [], "if-available", NOW) == []  # nothing held: accepted
    with pytest.raises(certs.CertificateRefused) as refused:
        certs.check_revocation(path, _lists(offline_pki, offline_pki.crl([leaf])), "if-available", NOW)
    assert refused.value.code == "certificate_revoked"
    # a list past its next update still counts, and is reported so the caller can warn
    stale = _lists(offline_pki, offline_pki.crl([other], last_update=NOW - dt.timedelta(days=10),
                                                next_update=NOW - dt.timedelta(days=3)))
    assert certs.check_revocation(path, stale, "if-available", NOW) == stale
    with pytest.raises(certs.CertificateRefused):
        certs.check_revocation(_path(offline_pki, other), stale, "if-available", NOW)


def test_policy_require_refuses_an_unknown_status(offline_pki):
    leaf = offline_pki.citizen("001099012345")
    path = _path(offline_pki, leaf)
    both = _lists(offline_pki, offline_pki.crl([]), make_crl(offline_pki.root))
    assert certs.check_revocation(path, both, "require", NOW) == []
    for lists in ([], both[:1], both[1:], _lists(offline_pki, offline_pki.crl(
            [], last_update=NOW - dt.timedelta(days=10), next_update=NOW - dt.timedelta(days=3)),
            make_crl(offline_pki.root))):
        with pytest.raises(certs.CertificateRefused) as refused:
            certs.check_revocation(path, lists, "require", NOW)
        assert refused.value.code == "revocation_status_unknown"


def test_a_list_counts_only_for_the_key_that_signed_it(offline_pki):
    leaf = offline_pki.citizen("001099012345")
    rekeyed = make_ca(offline_pki.intermediate.cert.subject.get_attributes_for_oid(
        certs.NameOID.COMMON_NAME)[0].value, issuer=offline_pki.root)  # same name, another key
    crl = make_crl(rekeyed, [leaf])
    lists = [certs.revocation_list(crl, certs.crl_signer(crl, [rekeyed.cert]))]
    assert certs.check_revocation(_path(offline_pki, leaf), lists, "if-available", NOW) == []


def test_newer_means_a_higher_number_else_a_later_date(offline_pki):
    older, newer = _lists(offline_pki, offline_pki.crl(number=2), offline_pki.crl(number=3))
    assert certs.supersedes(newer, older) and not certs.supersedes(older, newer)
    assert not certs.supersedes(older, older)
    undated = _lists(offline_pki, offline_pki.crl(number=None, last_update=NOW - dt.timedelta(days=2)),
                     offline_pki.crl(number=None))
    assert certs.supersedes(undated[1], undated[0]) and not certs.supersedes(undated[0], undated[1])


def test_the_revocation_policy_setting(monkeypatch):
    from services.identity import settings

    monkeypatch.delenv("CERT_REVOCATION_CHECK", raising=False)
    monkeypatch.delenv("IDENTITY_CERT_REVOCATION_CHECK", raising=False)
    assert settings.load().cert_revocation_check == "if-available"
    monkeypatch.setenv("CERT_REVOCATION_CHECK", "Require")
    assert settings.load().cert_revocation_check == "require"
    monkeypatch.setenv("CERT_REVOCATION_CHECK", "sometimes")
    with pytest.raises(ValueError):
        settings.load()
