"""What identity trusts for certificate sign-in: the certificate authorities (those of
``TRUSTED_CA_FILE`` plus those an operator added) and the revocation lists.

Revocation (``CERT_REVOCATION_CHECK``: ``off``, ``if-available``, ``require``) uses the CRLs an
operator imported (``add_crl``, kept in ``certificate_revocation_lists``) and the ``*.crl`` /
``*.pem`` files of ``CRL_DIR``; a file there counts only when its issuer in the verified chain
signed it. OCSP is out of scope: it needs the network at every sign-in.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from portal_common.db import Database
from portal_common.errors import Conflict, InvalidInput
from portal_common.eventstore import EventContext, EventStore, NewEvent
from services.identity import repository as repo
from services.identity.application.shared import now, record
from services.identity.domain import certificates as certs
from services.identity.settings import Settings

log = logging.getLogger(__name__)
_STALE_WARNED: set[tuple[str, str, int | None]] = set()
_CRL_FILES: dict[Path, tuple[tuple[int, int], list]] = {}


# -- trust anchors -----------------------------------------------------------------------------

def trust_anchors(db: Database, settings: Settings) -> list:
    pems = []
    if settings.trusted_ca_file:
        try:
            pems.append(Path(settings.trusted_ca_file).read_text())
        except OSError:
            log.error("TRUSTED_CA_FILE cannot be read")
    with db.transaction() as cur:
        pems += repo.trusted_ca_pems(cur)
    anchors = []
    for pem in pems:
        anchors += certs.load_bundle(pem)
    return anchors


def add_trusted_ca(db: Database, store: EventStore, pem: str, ctx: EventContext) -> dict:
    """Trust a CA certificate (the first of ``pem``: a bundle cannot slip in more anchors).

    ``status`` is ``added``, or ``unchanged`` when it was trusted already (nothing is written);
    a new one is recorded as ``TrustedCertificateAuthorityAdded``.
    """
    cert = certs.trustable_ca(pem, now())
    fp, subject = certs.fingerprint(cert), cert.subject.rfc4514_string()[:500]
    with db.transaction() as cur:
        added = repo.add_trusted_ca(cur, fp, subject, cert.public_bytes(serialization.Encoding.PEM).decode())
        if added:
            record(store, cur, f"ca-{fp[:32]}", [NewEvent("TrustedCertificateAuthorityAdded", {
                "subject": subject, "fingerprint": fp, "not_after": cert.not_valid_after_utc.isoformat()})], ctx)
    if added:
        log.info("Trusted CA added: %s (%s)", subject, fp)
    return {**certs.ca_view(cert, "added"), "status": "added" if added else "unchanged"}


def trusted_cas(db: Database, settings: Settings) -> dict:
    """The trust anchors, as ``trust_anchors`` reads them: ``TRUSTED_CA_FILE`` first, then those added.

    A certificate in both is listed once, as ``file``.
    """
    found: dict[str, dict] = {}
    if settings.trusted_ca_file:
        try:
            for cert in certs.load_bundle(Path(settings.trusted_ca_file).read_text()):
                found.setdefault(certs.fingerprint(cert), certs.ca_view(cert, "file"))
        except OSError:
            log.error("TRUSTED_CA_FILE cannot be read")
    with db.transaction() as cur:
        rows = repo.trusted_ca_rows(cur)
    for row in rows:
        for cert in certs.load_bundle(row["pem"]):
            found.setdefault(certs.fingerprint(cert), {**certs.ca_view(cert, "added"),
                                                       "added_at": row["added_at"].isoformat()})
    return {"items": list(found.values())}


# -- revocation lists --------------------------------------------------------------------------

def add_crl(db: Database, store: EventStore, settings: Settings, crl_text: str, issuer_pem: str | None,
            ctx: EventContext) -> dict:
    """Import a CRL (PEM, or base64 of its DER) signed by a trusted CA.

    A CRL of an intermediate CA needs that CA's certificate (``issuer_pem``, a PEM bundle whose
    first certificate is the CA, then any intermediates up to a trust anchor) the first time;
    it is kept for the next ones. Refused, writing nothing, when unreadable, signed by no trusted
    CA, or not newer than the CRL held for the same issuer; the same CRL again is a no-op.
    """
    try:
        crl = certs.read_crl(certs.decode_crl_text(crl_text))
    except certs.CertificateRefused as exc:
        raise InvalidInput(exc.code, exc.message) from None
    issuer_hash = certs.name_hash(crl.issuer)
    signer, keep_pem = _crl_signer(db, settings, crl, issuer_hash, issuer_pem)
    new = certs.revocation_list(crl, signer)
    der = crl.public_bytes(serialization.Encoding.DER)
    with db.transaction() as cur:
        repo.lock_crl_issuer(cur, issuer_hash)
        held = repo.held_crl(cur, issuer_hash, new.signer_key)
        if held is not None and not certs.supersedes(new, repo.revocation_list_of(held)):
            if bytes(held["der"]) == der:
                return _crl_summary(new, issuer_hash, "unchanged")
            raise Conflict("crl_not_newer", "A CRL as recent or more recent is already held for this issuer.")
        repo.save_crl(cur, {
            "issuer_hash": issuer_hash, "signer_key": new.signer_key, "issuer_der": new.issuer,
            "issuer": new.issuer_name[:500], "crl_number": new.number, "this_update": new.this_update,
            "next_update": new.next_update, "revoked_serials": [str(n) for n in sorted(new.revoked)],
            "revoked_count": new.revoked_count, "der": der, "issuer_pem": keep_pem})
        summary = _crl_summary(new, issuer_hash, "imported")
        record(store, cur, f"crl-{issuer_hash[:32]}", [NewEvent("CertificateRevocationListImported", {
            k: summary[k] for k in ("issuer", "issuer_id", "crl_number", "this_update", "next_update",
                                    "revoked_count")})], ctx)
    log.info("CRL imported for %s (number %s, %d revoked)", new.issuer_name, new.number, new.revoked_count)
    return summary


def _crl_signer(db: Database, settings: Settings, crl, issuer_hash: str,
                issuer_pem: str | None) -> tuple:
    """The trusted CA that signed ``crl``, and the PEM to keep when it is not a trust anchor."""
    anchors = trust_anchors(db, settings)
    given = certs.load_bundle(issuer_pem) if isinstance(issuer_pem, str) and issuer_pem.strip() else []
    if issuer_pem and not given:
        raise InvalidInput("certificate_invalid", "The issuer certificate is not a readable X.509 PEM.")
    with db.transaction() as cur:
        stored = [certs.load_bundle(pem) for pem in repo.crl_issuer_pems(cur, issuer_hash)]
    signer = certs.crl_signer(crl, anchors)
    if signer is not None:
        return signer, None
    for bundle in ([given] if given else []) + stored:
        try:
            certs.verify_ca(bundle[0], bundle[1:], anchors, now())
        except certs.CertificateRefused:
            continue
        signer = certs.crl_signer(crl, bundle[:1])
        if signer is not None:
            return signer, issuer_pem if bundle is given else None
    raise InvalidInput("crl_untrusted", "The CRL is not signed by a trusted certificate authority.")


def _crl_summary(rl: certs.RevocationList, issuer_hash: str, status: str) -> dict:
    return {"status": status, **certs.crl_view(rl, issuer_hash, now())}


def revocation_lists(db: Database, settings: Settings) -> dict:
    """The CRLs held: those imported (``source=imported``) and those of ``CRL_DIR`` (``source=file``;
    such a file counts only for a chain whose CA signed it, which is checked at sign-in)."""
    with db.transaction() as cur:
        rows = repo.crl_rows(cur)
    items = [{**certs.crl_view(repo.revocation_list_of(row), row["issuer_hash"], now()), "source": "imported",
              "imported_at": row["imported_at"].isoformat()} for row in rows]
    for crl in _crl_dir_lists(settings):
        items.append({**certs.crl_view(certs.list_facts(crl), certs.name_hash(crl.issuer), now()),
                      "source": "file", "imported_at": None})
    return {"items": items}


def _crl_dir_lists(settings: Settings) -> list:
    """The parsed CRLs of ``CRL_DIR`` (re-read only when a file changes)."""
    if not settings.crl_dir:
        return []
    found = []
    try:
        files = sorted(f for f in Path(settings.crl_dir).iterdir() if f.suffix.lower() in (".crl", ".pem"))
    except OSError:
        log.error("CRL_DIR cannot be read")
        return []
    for file in files:
        found += _crl_file(file)
    return found


def _crl_file(file: Path) -> list:
    try:
        stat = file.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = _CRL_FILES.get(file)
        if cached is None or cached[0] != stamp:
            cached = (stamp, [certs.read_crl(file.read_bytes())])
            _CRL_FILES[file] = cached
    except (OSError, certs.CertificateRefused):
        log.warning("CRL file %s cannot be read as a CRL; ignored", file.name)
        return []
    return cached[1]


def _lists_for(db: Database, settings: Settings, path: list) -> list[certs.RevocationList]:
    """The CRLs held for the issuers of ``path`` (database and ``CRL_DIR``)."""
    hashes = [certs.name_hash(c.issuer) for c in path[:-1]]
    serials = [str(c.serial_number) for c in path[:-1]]
    with db.transaction() as cur:
        lists = [repo.revocation_list_of(r) for r in repo.crls_for(cur, hashes, serials)]
    issuers = path[1:]
    for crl in _crl_dir_lists(settings):
        signer = certs.crl_signer(crl, issuers)
        if signer is not None:
            lists.append(certs.revocation_list(crl, signer))
    return lists


def check_revocation(db: Database, settings: Settings, path: list) -> None:
    """Refuse a revoked certificate of the verified path, per ``CERT_REVOCATION_CHECK``."""
    if settings.cert_revocation_check == "off":
        return
    stale = certs.check_revocation(path, _lists_for(db, settings, path), settings.cert_revocation_check, now())
    for rl in stale:
        key = (rl.issuer_name, rl.signer_key, rl.number)
        if key not in _STALE_WARNED:
            _STALE_WARNED.add(key)
            log.warning("The CRL of %s (number %s) is past its next update (%s); import a newer one",
                        rl.issuer_name, rl.number, rl.next_update)
