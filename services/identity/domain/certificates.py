"""Digital-signature certificates (SIM / USB token): chain, validity, key usage, subject, and
the signature over a server challenge. Plain Python over ``cryptography``, no I/O.

The chain is built from the presented leaf through the presented intermediates to a trusted
root: each link's signature is checked, every certificate must be within its validity dates,
each issuer must be a CA allowed to sign certificates, and the leaf must allow digital
signatures (or non-repudiation). Vietnamese signing certificates carry the holder's number
in the subject's UID as ``CCCD:<12 digits>`` (also ``CMND:``) for people or ``MST:<tax code>``
for organisations; a ``serialNumber`` attribute is read the same way.

Revocation is checked against certificate revocation lists (CRLs) an operator imported: every
certificate of the path but the trust anchor is looked up in its issuer's newest CRL, which
counts only when the issuer's own key signed it. Full CRLs only (no delta or indirect CRLs).
OCSP is out of scope: it needs a network round trip to the CA at every sign-in.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import itertools
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

from portal_common.errors import InvalidInput, ServiceError, Unauthorized
from services.identity.domain import ids

MAX_CHAIN = 6


class CertificateRefused(Exception):
    """Why a certificate or a signature is refused: a stable code and a safe message."""

    def __init__(self, code: str, message: str):
        super().__init__(code, message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class CertificateFacts:
    """What a verified certificate says about its holder."""

    kind: str  # "citizen" or "business"
    identifier: str  # CCCD or tax code
    common_name: str
    organization: str | None
    fingerprint: str
    not_after: dt.datetime


def load_pem(pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CertificateRefused("certificate_invalid", "The certificate is not a readable X.509 PEM.") from None


def load_bundle(pem_text: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem_text.encode())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return []


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def _within_dates(cert: x509.Certificate, now: dt.datetime, leaf: bool) -> None:
    if now < cert.not_valid_before_utc:
        raise CertificateRefused("certificate_not_yet_valid",
                                 "The certificate is not valid yet." if leaf else "A CA in the chain is not valid yet.")
    if now > cert.not_valid_after_utc:
        raise CertificateRefused("certificate_expired", "The certificate has expired." if leaf
                                 else "A CA certificate in the chain has expired.")


def _ca_may(cert: x509.Certificate, usage: str) -> bool:
    """A CA certificate whose key usage (when it states one) allows ``usage``."""
    try:
        if not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return False
    except x509.ExtensionNotFound:
        return False
    try:
        return getattr(cert.extensions.get_extension_for_class(x509.KeyUsage).value, usage)
    except x509.ExtensionNotFound:
        return True


def may_sign_certificates(cert: x509.Certificate) -> bool:
    """A CA whose key usage allows signing certificates (it may issue, and anchor, a chain)."""
    return _ca_may(cert, "key_cert_sign")


def _issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    if child.issuer != issuer.subject:
        return False
    try:
        child.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def verify_chain(leaf: x509.Certificate, intermediates: list[x509.Certificate],
                 anchors: list[x509.Certificate], now: dt.datetime) -> list[x509.Certificate]:
    """The path leaf → intermediates → anchor; ``CertificateRefused`` unless all of it is valid."""
    _within_dates(leaf, now, leaf=True)
    usage = None
    with contextlib.suppress(x509.ExtensionNotFound):
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    if usage is None or not (usage.digital_signature or usage.content_commitment):
        raise CertificateRefused("certificate_key_usage", "The certificate is not for digital signatures.")
    return _path_to_anchor(leaf, intermediates, anchors, now)


def _path_to_anchor(start: x509.Certificate, intermediates: list[x509.Certificate],
                    anchors: list[x509.Certificate], now: dt.datetime) -> list[x509.Certificate]:
    path, pool = [start], list(intermediates)
    for _ in range(MAX_CHAIN):
        for anchor in anchors:
            if _issued_by(path[-1], anchor):
                _within_dates(anchor, now, leaf=False)
                return [*path, anchor]
        nxt = next((c for c in pool if _issued_by(path[-1], c) and may_sign_certificates(c)), None)
        if nxt is None:
            break
        _within_dates(nxt, now, leaf=False)
        pool.remove(nxt)
        path.append(nxt)
    raise CertificateRefused("certificate_untrusted", "The certificate does not chain to a trusted authority.")


def verify_ca(ca: x509.Certificate, intermediates: list[x509.Certificate],
              anchors: list[x509.Certificate], now: dt.datetime) -> list[x509.Certificate]:
    """The path from a CA certificate to a trust anchor (an anchor's path is itself)."""
    if not may_sign_certificates(ca):
        raise CertificateRefused("not_a_ca", "This certificate is not a certificate authority's.")
    if any(ca == anchor for anchor in anchors):
        return [ca]
    _within_dates(ca, now, leaf=False)
    return _path_to_anchor(ca, intermediates, anchors, now)


def _subject_values(cert: x509.Certificate) -> list[str]:
    values = []
    for oid in (NameOID.USER_ID, NameOID.SERIAL_NUMBER):
        values += [str(a.value).strip() for a in cert.subject.get_attributes_for_oid(oid)]
    return values


def _first(cert: x509.Certificate, oid) -> str | None:
    attrs = cert.subject.get_attributes_for_oid(oid)
    return str(attrs[0].value) if attrs else None


def facts(cert: x509.Certificate) -> CertificateFacts:
    """The holder the certificate names; refused when it names no CCCD or tax code."""
    for value in _subject_values(cert):
        prefix, _, number = value.partition(":")
        prefix = prefix.strip().upper()
        number = number.strip()
        if prefix in ("CCCD", "CMND", "CAN CUOC") and ids.is_cccd(number):
            kind, identifier = "citizen", number
            break
        if prefix in ("MST", "TAX") and ids.is_tax_code(number):
            kind, identifier = "business", ids.normalize_tax_code(number)
            break
    else:
        raise CertificateRefused("certificate_no_identifier",
                                 "The certificate's subject names no CCCD (CCCD:...) or tax code (MST:...).")
    return CertificateFacts(kind, identifier, _first(cert, NameOID.COMMON_NAME) or identifier,
                            _first(cert, NameOID.ORGANIZATION_NAME), fingerprint(cert), cert.not_valid_after_utc)


def verify_signature(cert: x509.Certificate, message: bytes, signature_b64: str) -> None:
    """Check a base64 signature over ``message`` with the certificate's public key (SHA-256)."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        raise CertificateRefused("signature_invalid", "The signature is not valid base64.") from None
    key = cert.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            try:
                key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                key.verify(signature, message, padding.PSS(padding.MGF1(hashes.SHA256()),
                                                           padding.PSS.AUTO), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        else:
            raise CertificateRefused("certificate_key_unsupported", "The certificate's key type is not supported.")
    except (InvalidSignature, ValueError):
        raise CertificateRefused("signature_invalid", "The signature does not match the challenge.") from None


# -- revocation (CRLs) ---------------------------------------------------------------------

REVOCATION_POLICIES = ("off", "if-available", "require")


@dataclass(frozen=True)
class RevocationList:
    """What a verified CRL says: whose list it is, how recent, which serials it revokes.

    ``signer_key`` is the ``key_id`` of the CA key that signed it: a list counts for a
    certificate only when that key is the one of the certificate's issuer in the path.
    ``revoked`` may be narrowed to the serials a caller asked about (large lists stay in
    the database).
    """

    issuer: bytes  # DER of the issuer's name
    issuer_name: str
    number: int | None
    this_update: dt.datetime
    next_update: dt.datetime | None
    revoked: frozenset[int]
    signer_key: str
    revoked_count: int = 0

    def stale(self, now: dt.datetime) -> bool:
        return self.next_update is not None and self.next_update < now


def name_hash(name: x509.Name) -> str:
    """A stable key for an issuer's distinguished name (SHA-256 of its DER)."""
    return hashlib.sha256(name.public_bytes()).hexdigest()


def key_id(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's public key (SubjectPublicKeyInfo DER)."""
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def decode_crl_text(text: str) -> bytes:
    """A CRL given as PEM text or as base64 of its DER, as bytes."""
    if not isinstance(text, str) or not text.strip():
        raise CertificateRefused("crl_invalid", "Expected a CRL as PEM or as base64 of its DER.")
    if "-----BEGIN" in text:
        return text.encode()
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise CertificateRefused("crl_invalid", "The CRL is neither PEM nor base64 DER.") from None


def read_crl(data: bytes) -> x509.CertificateRevocationList:
    """Parse a CRL in PEM or DER; ``crl_invalid`` when it is neither."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CertificateRefused("crl_invalid", "The CRL is not a readable X.509 CRL.") from None


def _may_sign_crls(cert: x509.Certificate) -> bool:
    return _ca_may(cert, "crl_sign")


def crl_signer(crl: x509.CertificateRevocationList,
               candidates: list[x509.Certificate]) -> x509.Certificate | None:
    """The CA among ``candidates`` named as the CRL's issuer whose key signed it, if any."""
    for cert in candidates:
        if cert.subject != crl.issuer or not _may_sign_crls(cert):
            continue
        try:
            if crl.is_signature_valid(cert.public_key()):
                return cert
        except (TypeError, ValueError, UnsupportedAlgorithm):
            continue
    return None


def revocation_list(crl: x509.CertificateRevocationList, signer: x509.Certificate) -> RevocationList:
    """The facts of a CRL whose signature ``signer`` was checked to have made."""
    number = None
    with contextlib.suppress(x509.ExtensionNotFound):
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    revoked = frozenset(entry.serial_number for entry in crl)
    return RevocationList(crl.issuer.public_bytes(), crl.issuer.rfc4514_string(), number, crl.last_update_utc,
                          crl.next_update_utc, revoked, key_id(signer), len(revoked))


def supersedes(new: RevocationList, held: RevocationList) -> bool:
    """Whether ``new`` is more recent than ``held``: by CRL number, else by issue date."""
    if new.number is not None and held.number is not None:
        return new.number > held.number
    return new.this_update > held.this_update


def _newest_for(cert: x509.Certificate, issuer: x509.Certificate,
                lists: list[RevocationList]) -> RevocationList | None:
    name, signer = cert.issuer.public_bytes(), key_id(issuer)
    held = [rl for rl in lists if rl.issuer == name and rl.signer_key == signer]
    return max(held, key=lambda rl: (rl.this_update, rl.number or 0), default=None)


def check_revocation(path: list[x509.Certificate], lists: list[RevocationList], policy: str,
                     now: dt.datetime) -> list[RevocationList]:
    """Refuse ``path`` (leaf first, anchor last) when one of its certificates is revoked.

    ``off`` checks nothing; ``if-available`` checks each certificate whose issuer has a list
    (a list past its next update still counts: it is returned so the caller can warn);
    ``require`` also refuses when an issuer has no list or only one past its next update.
    """
    if policy == "off":
        return []
    stale: list[RevocationList] = []
    for position, (cert, issuer) in enumerate(itertools.pairwise(path)):
        held = _newest_for(cert, issuer, lists)
        if held is not None and cert.serial_number in held.revoked:
            raise CertificateRefused("certificate_revoked", "The certificate has been revoked by its authority."
                                     if position == 0 else "A CA certificate in the chain has been revoked.")
        if policy == "require" and (held is None or held.stale(now)):
            raise CertificateRefused("revocation_status_unknown",
                                     "The certificate's revocation status cannot be checked now; try again later.")
        if held is not None and held.stale(now):
            stale.append(held)
    return stale


def list_facts(crl: x509.CertificateRevocationList) -> RevocationList:
    """The facts of a CRL for display, its signer not checked (it is, where the list is used)."""
    number = None
    with contextlib.suppress(x509.ExtensionNotFound):
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    count = sum(1 for _ in crl)
    return RevocationList(crl.issuer.public_bytes(), crl.issuer.rfc4514_string(), number,
                          crl.last_update_utc, crl.next_update_utc, frozenset(), "", count)


def crl_view(rl: RevocationList, issuer_hash: str, now: dt.datetime) -> dict:
    return {"issuer": rl.issuer_name[:500], "issuer_id": issuer_hash,
            "crl_number": None if rl.number is None else str(rl.number),
            "this_update": rl.this_update.isoformat(),
            "next_update": rl.next_update.isoformat() if rl.next_update else None,
            "revoked_count": rl.revoked_count, "past_next_update": rl.stale(now)}


# -- trust anchors ---------------------------------------------------------------------------

def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def trustable_ca(pem: str, now: dt.datetime) -> x509.Certificate:
    """The first certificate of ``pem`` when it may become a trust anchor (a bundle cannot slip
    in more); ``InvalidInput`` saying why not otherwise."""
    try:
        cert = load_pem(pem if isinstance(pem, str) else "")
    except CertificateRefused as exc:
        raise InvalidInput(exc.code, exc.message) from None
    if not is_ca(cert):
        raise InvalidInput("not_a_ca", "This certificate is not a certificate authority's.")
    if not may_sign_certificates(cert):
        raise InvalidInput("ca_cannot_sign", "This CA's key usage does not allow signing certificates.")
    if now > cert.not_valid_after_utc:
        raise InvalidInput("ca_expired", "This CA certificate has expired; nothing it signed can be trusted.")
    return cert


def ca_view(cert: x509.Certificate, source: str) -> dict:
    """Public facts of a CA certificate (it holds nothing private)."""
    return {"subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
            "serial": format(cert.serial_number, "x"), "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(), "fingerprint": fingerprint(cert),
            "source": source, "added_at": None}


# -- challenges ------------------------------------------------------------------------------

def challenge_text(purpose: str) -> str:
    """A fresh text to sign: 256 random bits, naming what it is for."""
    return f"portal-identity:{purpose}:{base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()}"


def challenge_refusal(row: dict, purpose: str | None, now: dt.datetime) -> Unauthorized | None:
    """Why a stored challenge cannot be answered (used, expired, for something else), or None."""
    if row["used_at"] is not None:
        return Unauthorized("challenge_replayed", "This challenge was already used; ask for a new one.")
    if row["expires_at"] <= now:
        return Unauthorized("challenge_expired", "The challenge has expired; ask for a new one.")
    if purpose and row["purpose"] != purpose:
        return Unauthorized("challenge_invalid", "This challenge was issued for something else.")
    return None


def refusal(exc: CertificateRefused) -> ServiceError:
    """The typed error a refused certificate becomes: a bad signature is not authenticated, the rest invalid."""
    if exc.code == "signature_invalid":
        return Unauthorized(exc.code, exc.message)
    return InvalidInput(exc.code, exc.message)
