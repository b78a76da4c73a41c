"""Operators manage signing-certificate trust over HTTP, through the running system: trust a CA
and list it, import CRLs (PEM, base64 DER, a large one) and list them, a certificate a CRL
revokes is then refused at sign-in; the RPCs' typed refusals come back as problems and write
nothing; other roles get 403 and the anonymous 401. Also: a change of an applicant's SMS
preference is recorded once per real change."""

from __future__ import annotations

import base64
import datetime as dt
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from portal_common.contracts.identity import CRL_TEXT_MAX
from services.identity.domain import certificates as certs
from tests.identity.conftest import assert_problem
from tests.identity.pki import NOW, Pki, crl_der, crl_pem, make_ca, make_crl
from tests.support import accounts

pytestmark = pytest.mark.integration
CAS, CRLS = "/api/v1/pki/trusted-cas", "/api/v1/pki/crls"


@pytest.fixture(scope="module")
def tokens(gateway_url) -> dict[str, str]:
    return {"operator": accounts.staff_token(gateway_url, "operator"),
            "officer": accounts.staff_token(gateway_url, "officer", "G01.TEST"),
            "citizen": accounts.register_citizen(gateway_url)["access_token"]}


@pytest.fixture
def fresh_pki() -> Pki:
    """A PKI of this test's own, trusted by nobody yet."""
    return Pki(uuid.uuid4().hex[:12])


@pytest.fixture
def trusted_pki(api, tokens, fresh_pki) -> Pki:
    reply = api("POST", CAS, {"certificate_pem": fresh_pki.root_pem}, token=tokens["operator"])
    assert reply.status == 201, reply
    return fresh_pki


def _count(identity_db, sql: str, *args) -> int:
    with identity_db.transaction() as cur:
        cur.execute(f"SELECT count(*) AS n FROM {sql}", args)
        return cur.fetchone()["n"]


def _listed(api, tokens, path: str) -> list[dict]:
    reply = api("GET", path, token=tokens["operator"])
    assert reply.status == 200, reply
    return reply["items"]


def _sign_in(api, pki: Pki, leaf, purpose: str = "login"):
    ch = api("POST", "/api/v1/auth/challenge", {"purpose": purpose}).body
    proof = {"certificate_pem": leaf.pem, "chain_pem": pki.chain, "challenge_id": ch["challenge_id"],
             "signature": leaf.sign(ch["challenge"])}
    if purpose == "register":
        return api("POST", "/api/v1/auth/register/certificate", {**proof, "account_type": "citizen"})
    return api("POST", "/api/v1/auth/login", {"method": "certificate", **proof})


# -- trusted CAs --------------------------------------------------------------------------

def test_an_operator_trusts_a_ca_and_lists_it(api, tokens, fresh_pki, identity_db):
    root = fresh_pki.root.cert
    leaf = fresh_pki.citizen(accounts.random_person()["cccd"])
    assert_problem(_sign_in(api, fresh_pki, leaf, "register"), 422, "certificate_untrusted")
    added = api("POST", CAS, {"certificate_pem": fresh_pki.root_pem}, token=tokens["operator"])
    assert added.status == 201, added
    expected = {"subject": root.subject.rfc4514_string(), "issuer": root.issuer.rfc4514_string(),
                "serial": format(root.serial_number, "x"), "fingerprint": certs.fingerprint(root),
                "not_before": root.not_valid_before_utc.isoformat(), "not_after": root.not_valid_after_utc.isoformat(),
                "source": "added"}
    assert {k: added[k] for k in expected} == expected and added["status"] == "added"
    [listed] = [ca for ca in _listed(api, tokens, CAS) if ca["fingerprint"] == expected["fingerprint"]]
    assert {k: listed[k] for k in expected} == expected and listed["added_at"]
    assert "pem" not in listed and "certificate_pem" not in listed
    assert _sign_in(api, fresh_pki, leaf, "register").status == 201  # its certificates are trusted now
    again = api("POST", CAS, {"certificate_pem": fresh_pki.root_pem}, token=tokens["operator"])
    assert again.status == 200 and again["status"] == "unchanged", again
    with identity_db.transaction() as cur:
        cur.execute("SELECT payload FROM events WHERE event_type = 'TrustedCertificateAuthorityAdded' "
                    "AND payload->>'fingerprint' = %s", (expected["fingerprint"],))
        events = [r["payload"] for r in cur.fetchall()]
    assert events == [{"subject": expected["subject"], "fingerprint": expected["fingerprint"],
                       "not_after": expected["not_after"]}]


def test_only_the_first_certificate_of_a_bundle_is_trusted(api, tokens, fresh_pki):
    other = make_ca(f"Smuggled CA {uuid.uuid4().hex[:8]}")
    reply = api("POST", CAS, {"certificate_pem": fresh_pki.root_pem + other.pem}, token=tokens["operator"])
    assert reply.status == 201, reply
    listed = {ca["fingerprint"] for ca in _listed(api, tokens, CAS)}
    assert certs.fingerprint(fresh_pki.root.cert) in listed and certs.fingerprint(other.cert) not in listed


def _ca_without_cert_sign() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"CRL-only CA {uuid.uuid4().hex[:8]}")])
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize(("pem", "code"), [
    (lambda: make_ca(f"Expired CA {uuid.uuid4().hex[:8]}", days=10,
                     start=dt.datetime.now(dt.UTC) - dt.timedelta(days=20)).pem, "ca_expired"),
    (_ca_without_cert_sign, "ca_cannot_sign"),
])
def test_a_ca_that_cannot_anchor_a_chain_is_refused(api, tokens, identity_db, pem, code):
    before = _count(identity_db, "trusted_cas")
    assert_problem(api("POST", CAS, {"certificate_pem": pem()}, token=tokens["operator"]), 422, code)
    assert _count(identity_db, "trusted_cas") == before


@pytest.mark.parametrize(("pem", "status", "code"), [
    (lambda pki: pki.citizen(accounts.random_person()["cccd"]).pem, 422, "not_a_ca"),
    (lambda pki: "garbage", 422, "certificate_invalid"),
    (lambda pki: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", 422, "certificate_invalid"),
    (lambda pki: "   ", 422, "validation_failed"),
    (lambda pki: "x" * (64 * 1024 + 1), 422, "validation_failed"),
])
def test_what_is_not_a_ca_certificate_is_refused_and_nothing_is_stored(api, tokens, fresh_pki, identity_db,
                                                                       pem, status, code):
    before = _count(identity_db, "trusted_cas")
    assert_problem(api("POST", CAS, {"certificate_pem": pem(fresh_pki)}, token=tokens["operator"]), status, code)
    assert _count(identity_db, "trusted_cas") == before


# -- revocation lists ---------------------------------------------------------------------

def _crl_row(items: list[dict], pki: Pki, issuer: str = "intermediate") -> dict:
    subject = getattr(pki, issuer).cert.subject
    [row] = [c for c in items if c["issuer_id"] == certs.name_hash(subject)]
    return row


def test_an_imported_crl_is_listed_and_refuses_what_it_revokes(api, tokens, trusted_pki, identity_db):
    lost, kept = (trusted_pki.citizen(accounts.random_person()["cccd"]) for _ in range(2))
    assert _sign_in(api, trusted_pki, lost, "register").status == 201
    assert _sign_in(api, trusted_pki, kept, "register").status == 201
    crl = trusted_pki.crl([lost], number=9)
    body = {"crl": crl_pem(crl), "issuer_pem": trusted_pki.intermediate.pem}
    imported = api("POST", CRLS, body, token=tokens["operator"])
    assert imported.status == 201 and imported["status"] == "imported", imported
    assert imported["crl_number"] == "9" and imported["revoked_count"] == 1
    row = _crl_row(_listed(api, tokens, CRLS), trusted_pki)
    assert row == {"issuer": trusted_pki.intermediate.cert.subject.rfc4514_string(),
                   "issuer_id": imported["issuer_id"], "crl_number": "9",
                   "this_update": crl.last_update_utc.isoformat(), "next_update": crl.next_update_utc.isoformat(),
                   "revoked_count": 1, "past_next_update": False, "source": "imported",
                   "imported_at": row["imported_at"]}
    assert_problem(_sign_in(api, trusted_pki, lost), 422, "certificate_revoked")
    assert _sign_in(api, trusted_pki, kept).status == 200
    same = api("POST", CRLS, {"crl": base64.b64encode(crl_der(crl)).decode()}, token=tokens["operator"])
    assert same.status == 200 and same["status"] == "unchanged", same
    older = api("POST", CRLS, {"crl": crl_pem(trusted_pki.crl([], number=8))}, token=tokens["operator"])
    assert_problem(older, 409, "crl_not_newer")
    assert _count(identity_db, "events WHERE event_type = 'CertificateRevocationListImported' "
                  "AND payload->>'issuer_id' = %s", imported["issuer_id"]) == 1


def test_a_crl_past_its_next_update_is_flagged(api, tokens, trusted_pki):
    stale = make_crl(trusted_pki.root, number=1, last_update=NOW - dt.timedelta(days=10),
                     next_update=NOW - dt.timedelta(days=1))
    reply = api("POST", CRLS, {"crl": base64.b64encode(crl_der(stale)).decode()}, token=tokens["operator"])
    assert reply.status == 201 and reply["past_next_update"] is True, reply
    assert _crl_row(_listed(api, tokens, CRLS), trusted_pki, "root")["past_next_update"] is True


def test_a_large_crl_is_accepted(api, tokens, trusted_pki):
    """About 0.9 MB of DER (1.25 MB of PEM): within the route's limit and the gateway's body limit."""
    builder = (x509.CertificateRevocationListBuilder().issuer_name(trusted_pki.root.cert.subject)
               .last_update(NOW - dt.timedelta(hours=1)).next_update(NOW + dt.timedelta(days=7))
               .add_extension(x509.CRLNumber(1), critical=False))
    for _ in range(24_000):
        builder = builder.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(
            x509.random_serial_number()).revocation_date(NOW - dt.timedelta(days=1)).build())
    text = crl_pem(builder.sign(trusted_pki.root.key, hashes.SHA256()))
    assert 1_000_000 < len(text) <= CRL_TEXT_MAX
    reply = api("POST", CRLS, {"crl": text}, token=tokens["operator"])
    assert reply.status == 201 and reply["revoked_count"] == 24_000, reply
    assert _crl_row(_listed(api, tokens, CRLS), trusted_pki, "root")["revoked_count"] == 24_000


def test_an_oversized_crl_is_refused_before_it_reaches_identity(api, tokens):
    reply = api("POST", CRLS, {"crl": "A" * (CRL_TEXT_MAX + 1)}, token=tokens["operator"])
    assert_problem(reply, 422, "validation_failed")


@pytest.mark.parametrize("body", [
    {"crl": "garbage"}, {"crl": "!!notbase64!!"}, {"crl": base64.b64encode(b"\x30\x03\x02\x01\x01").decode()},
    {"crl": "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"},
])
def test_garbage_crls_are_refused_and_nothing_is_stored(api, tokens, identity_db, body):
    before = _count(identity_db, "certificate_revocation_lists")
    assert_problem(api("POST", CRLS, body, token=tokens["operator"]), 422, "crl_invalid")
    assert _count(identity_db, "certificate_revocation_lists") == before


def test_a_crl_no_trusted_ca_signed_is_refused(api, tokens, fresh_pki, identity_db):
    before = _count(identity_db, "certificate_revocation_lists")
    for body in ({"crl": crl_pem(fresh_pki.crl([]))},
                 {"crl": crl_pem(fresh_pki.crl([])), "issuer_pem": fresh_pki.intermediate.pem}):
        assert_problem(api("POST", CRLS, body, token=tokens["operator"]), 422, "crl_untrusted")
    assert_problem(api("POST", CRLS, {"crl": crl_pem(fresh_pki.crl([])), "issuer_pem": "not a pem"},
                       token=tokens["operator"]), 422, "certificate_invalid")
    assert _count(identity_db, "certificate_revocation_lists") == before


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", CAS, None), ("POST", CAS, {"certificate_pem": "x"}), ("GET", CRLS, None), ("POST", CRLS, {"crl": "x"}),
])
def test_only_operators_manage_trust(api, tokens, method, path, body):
    assert_problem(api(method, path, body), 401, "unauthorized")
    for role in ("citizen", "officer"):
        assert_problem(api(method, path, body, token=tokens[role]), 403, "forbidden")


def test_the_routes_are_documented(api):
    spec = api("GET", "/openapi.json").body
    for path in (CAS, CRLS):
        assert {"get", "post"} <= set(spec["paths"][path]), path
    assert spec["components"]["schemas"]["CrlBody"]["properties"]["crl"]["maxLength"] == CRL_TEXT_MAX


# -- SMS preference -------------------------------------------------------------------------

def test_a_preference_change_is_recorded_once_per_real_change(api, gateway_url, identity_db):
    citizen = accounts.register_citizen(gateway_url)
    token = citizen["access_token"]
    account_id = api("GET", "/api/v1/me", token=token)["account_id"]
    for value in (True, False, False, True, True):
        reply = api("PUT", "/api/v1/me/notifications", {"notify_sms": value}, token=token)
        assert reply.status == 200 and reply["notify_sms"] is value, reply
    with identity_db.transaction() as cur:
        cur.execute("SELECT payload, metadata FROM events WHERE stream_id = %s "
                    "AND event_type = 'NotificationPreferencesChanged' ORDER BY version",
                    (f"account-{account_id}",))
        rows = cur.fetchall()
    assert [r["payload"] for r in rows] == [{"account_id": account_id, "notify_sms": False},
                                            {"account_id": account_id, "notify_sms": True}]
    assert rows[0]["metadata"]["actor"]["id"] == account_id
