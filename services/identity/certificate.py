"""Registration and sign-in with a digital-signature SIM or USB token.

The client asks for a challenge, signs its text with the certificate's private key and
presents certificate, chain and signature. Each challenge is single use: the first attempt
consumes it, whatever its outcome, so a captured signature cannot be replayed. The trusted
authorities are those in ``TRUSTED_CA_FILE`` plus those an operator added (``trusted_cas``).

Revocation (``CERT_REVOCATION_CHECK``: ``off``, ``if-available``, ``require``) uses the CRLs an
operator imported (``add_crl``, kept in ``certificate_revocation_lists``) and the ``*.crl`` /
``*.pem`` files of ``CRL_DIR``; a file there counts only when its issuer in the verified chain
signed it. OCSP is out of scope: it needs the network at every sign-in.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import logging
import secrets
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from portal_common.contracts.identity import ChallengeBody, LoginBody, RegisterCertificateBody
from portal_common.db import Database
from portal_common.errors import Conflict, InvalidInput, ServiceError, Unauthorized
from portal_common.eventstore import EventContext, EventStore, NewEvent
from services.identity import repository as repo
from services.identity import sessions, signin
from services.identity.common import load, now, record
from services.identity.domain import certificates as certs
from services.identity.domain import ids
from services.identity.domain.tokens import SigningKey
from services.identity.settings import Settings

log = logging.getLogger(__name__)
_CERT_STATUS = {"signature_invalid": 401}
_STALE_WARNED: set[tuple[str, str, int | None]] = set()
_CRL_FILES: dict[Path, tuple[tuple[int, int], list]] = {}


def new_challenge(db: Database, settings: Settings, raw: dict) -> dict:
    data = load(ChallengeBody, raw or {})
    challenge_id = uuid.uuid4()
    text = f"portal-identity:{data['purpose']}:{base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()}"
    with db.transaction() as cur:
        repo.insert_challenge(cur, challenge_id, text, data["purpose"],
                              now() + dt.timedelta(seconds=settings.challenge_ttl_s))
    return {"challenge_id": str(challenge_id), "challenge": text, "expires_in": settings.challenge_ttl_s}


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
    try:
        cert = certs.load_pem(pem if isinstance(pem, str) else "")
    except certs.CertificateRefused as exc:
        raise InvalidInput(exc.code, exc.message) from None
    if not _is_ca(cert):
        raise InvalidInput("not_a_ca", "This certificate is not a certificate authority's.")
    if not certs.may_sign_certificates(cert):
        raise InvalidInput("ca_cannot_sign", "This CA's key usage does not allow signing certificates.")
    if now() > cert.not_valid_after_utc:
        raise InvalidInput("ca_expired", "This CA certificate has expired; nothing it signed can be trusted.")
    fp, subject = certs.fingerprint(cert), cert.subject.rfc4514_string()[:500]
    with db.transaction() as cur:
        added = repo.add_trusted_ca(cur, fp, subject, cert.public_bytes(serialization.Encoding.PEM).decode())
        if added:
            record(store, cur, f"ca-{fp[:32]}", [NewEvent("TrustedCertificateAuthorityAdded", {
                "subject": subject, "fingerprint": fp, "not_after": cert.not_valid_after_utc.isoformat()})], ctx)
    if added:
        log.info("Trusted CA added: %s (%s)", subject, fp)
    return {**_ca_view(cert, "added"), "status": "added" if added else "unchanged"}


def _is_ca(cert) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(certs.x509.BasicConstraints).value.ca)
    except certs.x509.ExtensionNotFound:
        return False


def trusted_cas(db: Database, settings: Settings) -> dict:
    """The trust anchors, as ``trust_anchors`` reads them: ``TRUSTED_CA_FILE`` first, then those added.

    A certificate in both is listed once, as ``file``.
    """
    found: dict[str, dict] = {}
    if settings.trusted_ca_file:
        try:
            for cert in certs.load_bundle(Path(settings.trusted_ca_file).read_text()):
                found.setdefault(certs.fingerprint(cert), _ca_view(cert, "file"))
        except OSError:
            log.error("TRUSTED_CA_FILE cannot be read")
    with db.transaction() as cur:
        rows = repo.trusted_ca_rows(cur)
    for row in rows:
        for cert in certs.load_bundle(row["pem"]):
            found.setdefault(certs.fingerprint(cert), {**_ca_view(cert, "added"),
                                                       "added_at": row["added_at"].isoformat()})
    return {"items": list(found.values())}


def _ca_view(cert, source: str) -> dict:
    """Public facts of a CA certificate (it holds nothing private)."""
    return {"subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
            "serial": format(cert.serial_number, "x"), "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(), "fingerprint": certs.fingerprint(cert),
            "source": source, "added_at": None}


# -- revocation lists ------------------------------------------------------------------------

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
        if held is not None and not certs.supersedes(new, _from_row(held)):
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
    return {"status": status, **_crl_view(rl, issuer_hash)}


def _crl_view(rl: certs.RevocationList, issuer_hash: str) -> dict:
    return {"issuer": rl.issuer_name[:500], "issuer_id": issuer_hash,
            "crl_number": None if rl.number is None else str(rl.number),
            "this_update": rl.this_update.isoformat(),
            "next_update": rl.next_update.isoformat() if rl.next_update else None,
            "revoked_count": rl.revoked_count, "past_next_update": rl.stale(now())}


def revocation_lists(db: Database, settings: Settings) -> dict:
    """The CRLs held: those imported (``source=imported``) and those of ``CRL_DIR`` (``source=file``;
    such a file counts only for a chain whose CA signed it, which is checked at sign-in)."""
    with db.transaction() as cur:
        rows = repo.crl_rows(cur)
    items = [{**_crl_view(_from_row(row), row["issuer_hash"]), "source": "imported",
              "imported_at": row["imported_at"].isoformat()} for row in rows]
    for crl in _crl_dir_lists(settings):
        items.append({**_crl_view(_file_list(crl), certs.name_hash(crl.issuer)), "source": "file",
                      "imported_at": None})
    return {"items": items}


def _file_list(crl) -> certs.RevocationList:
    """The facts of a ``CRL_DIR`` list for display (its signer is checked where it is used)."""
    number = None
    with contextlib.suppress(certs.x509.ExtensionNotFound):
        number = crl.extensions.get_extension_for_class(certs.x509.CRLNumber).value.crl_number
    count = sum(1 for _ in crl)
    return certs.RevocationList(crl.issuer.public_bytes(), crl.issuer.rfc4514_string(), number,
                                crl.last_update_utc, crl.next_update_utc, frozenset(), "", count)


def _from_row(row: dict) -> certs.RevocationList:
    number = row["crl_number"]
    return certs.RevocationList(
        bytes(row["issuer_der"]), row["issuer"], None if number is None else int(number), row["this_update"],
        row["next_update"], frozenset(int(s) for s in row.get("revoked") or ()), row["signer_key"],
        row["revoked_count"])


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
        lists = [_from_row(r) for r in repo.crls_for(cur, hashes, serials)]
    issuers = path[1:]
    for crl in _crl_dir_lists(settings):
        signer = certs.crl_signer(crl, issuers)
        if signer is not None:
            lists.append(certs.revocation_list(crl, signer))
    return lists


def _check_revocation(db: Database, settings: Settings, path: list) -> None:
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


def _refusal(exc: certs.CertificateRefused) -> ServiceError:
    if exc.code == "signature_invalid":
        return Unauthorized(exc.code, exc.message)
    return InvalidInput(exc.code, exc.message)


def _consume_challenge(db: Database, challenge_id: uuid.UUID, purpose: str | None) -> str:
    """The challenge text, marked used in its own committed transaction (single use)."""
    failure = None
    with db.transaction() as cur:
        row = repo.take_challenge(cur, challenge_id)
        if row is None:
            raise Unauthorized("challenge_invalid", "Unknown challenge; ask for a new one.")
        if row["used_at"] is not None:
            failure = Unauthorized("challenge_replayed", "This challenge was already used; ask for a new one.")
        elif row["expires_at"] <= now():
            failure = Unauthorized("challenge_expired", "The challenge has expired; ask for a new one.")
        elif purpose and row["purpose"] != purpose:
            failure = Unauthorized("challenge_invalid", "This challenge was issued for something else.")
        repo.use_challenge(cur, challenge_id)
    if failure is not None:
        raise failure
    return row["nonce"]


def _proven(db: Database, settings: Settings, data: dict, purpose: str) -> certs.CertificateFacts:
    """Consume the challenge, then verify certificate, chain and signature."""
    text = _consume_challenge(db, data["challenge_id"], purpose)
    leaf = certs.load_pem(data["certificate_pem"])
    chain = [certs.load_pem(p) for p in data.get("chain_pem") or []]
    path = certs.verify_chain(leaf, chain, trust_anchors(db, settings), now())
    _check_revocation(db, settings, path)
    facts = certs.facts(leaf)
    certs.verify_signature(leaf, text.encode(), data["signature"])
    return facts


def register(db: Database, store: EventStore, key: SigningKey, settings: Settings, raw: dict,
             context: dict | None, ctx: EventContext) -> dict:
    data = load(RegisterCertificateBody, raw)
    try:
        facts = _proven(db, settings, data, "register")
    except certs.CertificateRefused as exc:
        raise _refusal(exc) from None
    if facts.kind != data["account_type"]:
        raise InvalidInput("certificate_wrong_holder",
                           f"This certificate belongs to a {facts.kind}, not a {data['account_type']}.")
    phone = None
    if data.get("phone"):
        phone = ids.normalize_phone(data["phone"])
        if phone is None:
            raise InvalidInput("invalid_phone", "Not a Vietnamese mobile number.")
    account_id = str(uuid.uuid4())
    account = {"id": account_id, "role": facts.kind, "identifier": facts.identifier, "phone": phone,
               "certificate_fingerprint": facts.fingerprint, "methods": ["certificate"]}
    if facts.kind == "business":
        name = data.get("business_name") or facts.organization or facts.common_name
        rep = data.get("representative_cccd")
        if not rep or not ids.is_cccd(rep):
            raise InvalidInput("invalid_cccd", "A business needs its legal representative's CCCD (12 digits).",
                               [{"field": "representative_cccd", "message": "A valid CCCD is required."}])
        account.update(full_name=" ".join(name.split())[:200], representative_cccd=rep)
        event = NewEvent("BusinessRegistered", {
            "account_id": account_id, "tax_code": facts.identifier, "name": account["full_name"],
            "representative_cccd": rep, "method": "certificate", "certificate_kind": data["certificate_kind"]})
    else:
        _, gender = ids.cccd_birth(facts.identifier)
        account.update(full_name=" ".join((data.get("full_name") or facts.common_name).split())[:100],
                       gender=gender)
        event = NewEvent("CitizenRegistered", {
            "account_id": account_id, "cccd": facts.identifier, "full_name": account["full_name"],
            "gender": gender, "phone": phone, "method": "certificate",
            "certificate_kind": data["certificate_kind"]})
    with db.transaction() as cur:
        if repo.identifier_taken(cur, facts.identifier) or repo.certificate_taken(cur, facts.fingerprint):
            raise Conflict("account_exists", "An account already exists for this holder; sign in instead.")
        repo.insert_account(cur, account)
        tokens = sessions.issue(cur, key, settings, account)
        record(store, cur, f"account-{account_id}", [
            event,
            NewEvent("AccountVerified", {"account_id": account_id, "method": "certificate",
                                         "detail": data["certificate_kind"]}),
        ], ctx)
        signin.succeeded(cur, store, account, "certificate", context, ctx)
    return {**tokens, "status": "registered"}


def login(db: Database, store: EventStore, key: SigningKey, settings: Settings, raw: dict,
          context: dict | None, ctx: EventContext) -> dict:
    """Certificate sign-in: tokens at once (the certificate is the second factor)."""
    data = load(LoginBody, raw)
    source = signin.source_key(context)
    with db.transaction() as cur:
        signin.refuse_if_locked(cur, None, source)
    account = None
    failure: ServiceError | None = None
    try:
        facts = _proven(db, settings, data, "login")
    except certs.CertificateRefused as exc:
        failure, reason = _refusal(exc), ("bad_signature" if exc.code == "signature_invalid" else "bad_certificate")
    except Unauthorized as exc:
        failure, reason = exc, "challenge_invalid"
    with db.transaction() as cur:
        if failure is None:
            account = repo.account_by_identifier(cur, facts.identifier)
            if account is None or account["role"] != facts.kind or account["status"] != "active":
                account, reason = None, "bad_credentials"
                failure = Unauthorized(*signin.BAD_CREDENTIALS)
            else:
                signin.refuse_if_locked(cur, str(account["id"]), source)
        if failure is not None:
            signin.register_failure(cur, store, settings, str(account["id"]) if account else None,
                                    str(account["id"]) if account else None, context, "certificate", reason, ctx)
        else:
            cur.execute("UPDATE accounts SET certificate_fingerprint = %s, methods = array(SELECT DISTINCT "
                        "unnest(methods || ARRAY['certificate'])), updated_at = now() WHERE id = %s",
                        (facts.fingerprint, str(account["id"])))
            result = sessions.issue(cur, key, settings, account)
            signin.succeeded(cur, store, account, "certificate", context, ctx)
    if failure is not None:
        raise failure
    return result
