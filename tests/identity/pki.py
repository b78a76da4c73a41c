"""A test public-key infrastructure made with ``cryptography``: a root CA, an intermediate,
and signing certificates for citizens (UID ``CCCD:...``) and businesses (UID ``MST:...``),
including expired ones, ones from an untrusted CA and ones not meant for signatures; and
certificate revocation lists (CRLs) in which a CA revokes some of them."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

NOW = dt.datetime.now(dt.UTC)


@dataclass
class Issued:
    cert: x509.Certificate
    key: object

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def sign(self, text: str) -> str:
        data = text.encode()
        if isinstance(self.key, rsa.RSAPrivateKey):
            from cryptography.hazmat.primitives.asymmetric import padding

            raw = self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        else:
            raw = self.key.sign(data, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(raw).decode()


def _name(cn: str, uid: str | None = None, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    if uid:
        attrs.append(x509.NameAttribute(NameOID.USER_ID, uid))
    return x509.Name(attrs)


def _key(kind: str = "ec"):
    return rsa.generate_private_key(65537, 2048) if kind == "rsa" else ec.generate_private_key(ec.SECP256R1())


def make_ca(cn: str, issuer: Issued | None = None, days: int = 3650, start: dt.datetime | None = None) -> Issued:
    key = _key()
    start = start or NOW - dt.timedelta(days=1)
    builder = (x509.CertificateBuilder().subject_name(_name(cn))
               .issuer_name(issuer.cert.subject if issuer else _name(cn))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False, key_agreement=False,
                                            key_cert_sign=True, crl_sign=True, encipher_only=False,
                                            decipher_only=False), critical=True))
    cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    return Issued(cert, key)


def make_leaf(issuer: Issued, uid: str, cn: str = "NGUYEN VAN A", org: str | None = None,
              not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
              signing: bool = True, key_kind: str = "ec") -> Issued:
    key = _key(key_kind)
    builder = (x509.CertificateBuilder().subject_name(_name(cn, uid, org)).issuer_name(issuer.cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before or NOW - dt.timedelta(days=1))
               .not_valid_after(not_after or NOW + dt.timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=signing, content_commitment=signing,
                                            key_encipherment=not signing, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=False, crl_sign=False,
                                            encipher_only=False, decipher_only=False), critical=True))
    return Issued(builder.sign(issuer.key, hashes.SHA256()), key)


def make_crl(issuer: Issued, revoked: list[Issued] = (), number: int | None = 1,
             last_update: dt.datetime | None = None, next_update: dt.datetime | None = None,
             signing_key: object | None = None) -> x509.CertificateRevocationList:
    """A CRL in ``issuer``'s name revoking ``revoked``, signed by its key (or ``signing_key``)."""
    last_update = last_update or NOW - dt.timedelta(hours=1)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer.cert.subject)
               .last_update(last_update).next_update(next_update or last_update + dt.timedelta(days=7)))
    if number is not None:
        builder = builder.add_extension(x509.CRLNumber(number), critical=False)
    for item in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(item.cert.serial_number)
            .revocation_date(last_update - dt.timedelta(minutes=5)).build())
    return builder.sign(signing_key or issuer.key, hashes.SHA256())


def crl_pem(crl: x509.CertificateRevocationList) -> str:
    return crl.public_bytes(serialization.Encoding.PEM).decode()


def crl_der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)


class Pki:
    """Root → intermediate → leaves, plus a stranger CA nobody trusts."""

    def __init__(self, tag: str = "") -> None:
        """``tag`` sets the CAs' names apart (a CRL is looked up by its issuer's name)."""
        suffix = f" {tag}" if tag else ""
        self.root = make_ca(f"Portal Test Root CA{suffix}")
        self.intermediate = make_ca(f"Portal Test Signing CA{suffix}", issuer=self.root)
        self.stranger = make_ca(f"Untrusted CA{suffix}")

    def citizen(self, cccd: str, **kw) -> Issued:
        return make_leaf(self.intermediate, f"CCCD:{cccd}", **kw)

    def business(self, tax_code: str, **kw) -> Issued:
        kw.setdefault("org", "CONG TY TNHH THU NGHIEM")
        kw.setdefault("cn", "CONG TY TNHH THU NGHIEM")
        return make_leaf(self.intermediate, f"MST:{tax_code}", **kw)

    @property
    def chain(self) -> list[str]:
        return [self.intermediate.pem]

    @property
    def root_pem(self) -> str:
        return self.root.pem

    def crl(self, revoked: list[Issued] = (), **kw) -> x509.CertificateRevocationList:
        """The signing (intermediate) CA's CRL."""
        return make_crl(self.intermediate, revoked, **kw)
