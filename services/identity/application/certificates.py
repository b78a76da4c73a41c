"""Registration and sign-in with a digital-signature SIM or USB token.

The client asks for a challenge, signs its text with the certificate's private key and
presents certificate, chain and signature. Each challenge is single use: the first attempt
consumes it, whatever its outcome, so a captured signature cannot be replayed. The chain must
end at a CA ``pki`` trusts, and no certificate of it may be revoked (``pki.check_revocation``).
"""

from __future__ import annotations

import datetime as dt
import uuid

from portal_common.contracts.identity import ChallengeBody, LoginBody, RegisterCertificateBody
from portal_common.db import Database
from portal_common.errors import Conflict, InvalidInput, ServiceError, Unauthorized
from portal_common.eventstore import EventContext, EventStore, NewEvent
from services.identity import repository as repo
from services.identity.application import attempts, pki, sessions
from services.identity.application.shared import load, now, record
from services.identity.domain import accounts, ids
from services.identity.domain import certificates as certs
from services.identity.domain.tokens import SigningKey
from services.identity.settings import Settings


def new_challenge(db: Database, settings: Settings, raw: dict) -> dict:
    data = load(ChallengeBody, raw or {})
    challenge_id = uuid.uuid4()
    text = certs.challenge_text(data["purpose"])
    with db.transaction() as cur:
        repo.insert_challenge(cur, challenge_id, text, data["purpose"],
                              now() + dt.timedelta(seconds=settings.challenge_ttl_s))
    return {"challenge_id": str(challenge_id), "challenge": text, "expires_in": settings.challenge_ttl_s}


def _consume_challenge(db: Database, challenge_id: uuid.UUID, purpose: str | None) -> str:
    """The challenge text, marked used in its own committed transaction (single use)."""
    with db.transaction() as cur:
        row = repo.take_challenge(cur, challenge_id)
        if row is None:
            raise Unauthorized("challenge_invalid", "Unknown challenge; ask for a new one.")
        failure = certs.challenge_refusal(row, purpose, now())
        repo.use_challenge(cur, challenge_id)
    if failure is not None:
        raise failure
    return row["nonce"]


def _proven(db: Database, settings: Settings, data: dict, purpose: str) -> certs.CertificateFacts:
    """Consume the challenge, then verify certificate, chain and signature."""
    text = _consume_challenge(db, data["challenge_id"], purpose)
    leaf = certs.load_pem(data["certificate_pem"])
    chain = [certs.load_pem(p) for p in data.get("chain_pem") or []]
    path = certs.verify_chain(leaf, chain, pki.trust_anchors(db, settings), now())
    pki.check_revocation(db, settings, path)
    facts = certs.facts(leaf)
    certs.verify_signature(leaf, text.encode(), data["signature"])
    return facts


def register(db: Database, store: EventStore, key: SigningKey, settings: Settings, raw: dict,
             context: dict | None, ctx: EventContext) -> dict:
    data = load(RegisterCertificateBody, raw)
    try:
        facts = _proven(db, settings, data, "register")
    except certs.CertificateRefused as exc:
        raise certs.refusal(exc) from None
    if facts.kind != data["account_type"]:
        raise InvalidInput("certificate_wrong_holder",
                           f"This certificate belongs to a {facts.kind}, not a {data['account_type']}.")
    phone = None
    if data.get("phone"):
        phone = ids.normalize_phone(data["phone"])
        if phone is None:
            raise InvalidInput("invalid_phone", "Not a Vietnamese mobile number.")
    account_id = str(uuid.uuid4())
    account, registered = accounts.certificate_holder(account_id, facts, data, phone)
    with db.transaction() as cur:
        if repo.identifier_taken(cur, facts.identifier) or repo.certificate_taken(cur, facts.fingerprint):
            raise Conflict("account_exists", "An account already exists for this holder; sign in instead.")
        repo.insert_account(cur, account)
        issued = sessions.issue(cur, key, settings, account)
        record(store, cur, f"account-{account_id}", [
            registered,
            NewEvent("AccountVerified", {"account_id": account_id, "method": "certificate",
                                         "detail": data["certificate_kind"]}),
        ], ctx)
        attempts.succeeded(cur, store, account, "certificate", context, ctx)
    return {**issued, "status": "registered"}


def login(db: Database, store: EventStore, key: SigningKey, settings: Settings, raw: dict,
          context: dict | None, ctx: EventContext) -> dict:
    """Certificate sign-in: tokens at once (the certificate is the second factor)."""
    data = load(LoginBody, raw)
    source = attempts.source_key(context)
    with db.transaction() as cur:
        attempts.refuse_if_locked(cur, None, source)
    account = None
    failure: ServiceError | None = None
    try:
        facts = _proven(db, settings, data, "login")
    except certs.CertificateRefused as exc:
        failure = certs.refusal(exc)
        reason = "bad_signature" if exc.code == "signature_invalid" else "bad_certificate"
    except Unauthorized as exc:
        failure, reason = exc, "challenge_invalid"
    with db.transaction() as cur:
        if failure is None:
            account = repo.account_by_identifier(cur, facts.identifier)
            if account is None or account["role"] != facts.kind or account["status"] != "active":
                account, reason = None, "bad_credentials"
                failure = Unauthorized(*attempts.BAD_CREDENTIALS)
            else:
                attempts.refuse_if_locked(cur, str(account["id"]), source)
        if failure is not None:
            account_id = str(account["id"]) if account else None
            attempts.register_failure(cur, store, settings, account_id, account_id, context, "certificate", reason,
                                      ctx)
        else:
            repo.add_certificate_method(cur, account["id"], facts.fingerprint)
            result = sessions.issue(cur, key, settings, account)
            attempts.succeeded(cur, store, account, "certificate", context, ctx)
    if failure is not None:
        raise failure
    return result
