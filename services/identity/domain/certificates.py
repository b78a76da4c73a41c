"""Digital-signature certificates (SIM / USB token): chain, validity, key usage, subject, and
the signature over a server challenge. Plain Python over ``cryptography``, no I/O.

The chain is built from the presented leaf through the presented intermediates to a trusted
root: each link's signature is checked, every certificate must be within its validity dates,
each issuer must be a CA allowed to sign certificates, and the leaf must allow digital
signatures (or non-repudiation). Vietnamese signing certificates carry the holder's number
in the subject's UID as ``CCCD:<12 digits>`` (also ``CMND:``) for people or ``MST:<tax code>``
for organisations; a ``serialNumber`` attribute is read the same way.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

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


def _is_signing_ca(cert: x509.Certificate) -> bool:
    try:
        if not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return False
    except x509.ExtensionNotFound:
        return False
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    except x509.ExtensionNotFound:
        return True


def _issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    if child.issuer != issuer.subject:
        return False
    try:
        child.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def verify_chain(leaf: x509.Certificate, intermediates: list[x509.Certificate],
                 anchors: list[x509.Certificate], now: dt.datetime) -> None:
    """Raise ``CertificateRefused`` unless ``leaf`` chains to one of ``anchors`` and all is valid."""
    _within_dates(leaf, now, leaf=True)
    usage = None
    with contextlib.suppress(x509.ExtensionNotFound):
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    if usage is None or not (usage.digital_signature or usage.content_commitment):
        raise CertificateRefused("certificate_key_usage", "The certificate is not for digital signatures.")
    current, pool = leaf, list(intermediates)
    for _ in range(MAX_CHAIN):
        for anchor in anchors:
            if _issued_by(current, anchor):
                _within_dates(anchor, now, leaf=False)
                return
        nxt = next((c for c in pool if _issued_by(current, c) and _is_signing_ca(c)), None)
        if nxt is None:
            break
        _within_dates(nxt, now, leaf=False)
        pool.remove(nxt)
        current = nxt
    raise CertificateRefused("certificate_untrusted", "The certificate does not chain to a trusted authority.")


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
