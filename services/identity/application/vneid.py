"""Sign-in with VNeID: start, complete, link an existing account, and back-channel logout.

``start`` keeps a single-use ``state`` (only its hash), the ``nonce`` and the PKCE verifier in
identity's database and hands back the provider's authorization URL. ``complete`` takes the
state (deleted as it is read, so it works once, and only before it expires), trades the code at
the provider, verifies the ID token and reads userinfo; then the subject signs in as its linked
account, or a first sign-in creates the account from the verified claims, or, when an account
already has this CCCD, the caller gets ``409 vneid_link_required`` with a link token and must
prove the account is theirs (``link``: a one-time code to its registered phone, or its
password). A claim alone never takes an account over.

Every VNeID sign-in records the account's assurance level (1 or 2), which its access tokens then
carry as ``acr``. A back-channel logout from the provider ends all the account's sessions and
publishes ``SignedOut`` (``all_sessions``), so every gateway refuses its access tokens at once.
"""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg2.errors
import requests

from portal_common.contracts.vneid import (
    VneidCompleteBody,
    VneidIdentityBody,
    VneidLinkBody,
    VneidLogoutBody,
    VneidStartBody,
)
from portal_common.db import Database
from portal_common.errors import Conflict, InvalidInput, NotFound, ServiceError, Unauthorized, Unavailable
from portal_common.eventstore import EventContext, EventStore
from services.identity import repository as repo
from services.identity.adapters import Adapters
from services.identity.adapters.vneid import VneidProvider
from services.identity.application import codes, sessions
from services.identity.application.attempts import BAD_CREDENTIALS, refuse_if_locked, register_failure, source_key
from services.identity.application.shared import client_ip, load, now, off_loop, record
from services.identity.domain import oidc, otp, passwords
from services.identity.domain.sessions import signed_out
from services.identity.domain.tokens import SigningKey
from services.identity.settings import Settings, VneidSettings

NOT_CONFIGURED = ("vneid_not_configured", "Sign-in with VNeID is not configured here.")
REDIRECT_NOT_REGISTERED = ("redirect_uri_not_registered",
                           "The redirect_uri is not one registered for sign-in with VNeID.")


def _require(provider: VneidProvider | None) -> VneidProvider:
    if provider is None or not provider.settings.enabled:
        raise NotFound(*NOT_CONFIGURED)
    return provider


def start(db: Database, provider: VneidProvider | None, raw: dict) -> dict:
    """A new sign-in: the URL to send the browser to, and its ``state``."""
    provider = _require(provider)
    data = load(VneidStartBody, raw)
    vs = provider.settings
    if data["redirect_uri"] not in vs.redirect_uris:
        raise InvalidInput(*REDIRECT_NOT_REGISTERED, [{"field": "redirect_uri",
                                                       "message": "Not a registered redirect URI."}])
    state, state_hash = oidc.new_secret()
    nonce, _ = oidc.new_secret()
    verifier = oidc.new_secret()[0] + oidc.new_secret()[0][:20]  # 63 characters (RFC 7636: 43 to 128)
    url = provider.authorization_url(data["redirect_uri"], state, nonce, verifier, data.get("login_hint"))
    with db.transaction() as cur:
        repo.insert_vneid_state(cur, state_hash, nonce, verifier, data["redirect_uri"],
                                now() + dt.timedelta(seconds=vs.state_ttl_s))
    return {"authorization_url": url, "state": state, "expires_in": vs.state_ttl_s}


def complete(db: Database, store: EventStore, key: SigningKey, provider: VneidProvider | None, settings: Settings,
             raw: dict, context: dict | None, ctx: EventContext) -> dict:
    """The provider sent the browser back with ``code`` and ``state``: sign in (or create, or ask to link)."""
    provider = _require(provider)
    data = load(VneidCompleteBody, raw)
    with db.transaction() as cur:  # the state is spent whatever happens next
        started = repo.take_vneid_state(cur, oidc.secret_hash(data["state"]))
    if started is None:
        raise Unauthorized(*oidc.STATE_INVALID)
    tokens = provider.exchange(data["code"], started["redirect_uri"], started["code_verifier"])
    id_claims = provider.verify_id_token(tokens["id_token"], started["nonce"])
    who = oidc.person(id_claims, provider.userinfo(tokens["access_token"]))
    failure: ServiceError | None = None
    with db.transaction() as cur:
        repo.lock_identifier(cur, oidc.identifier(who))
        linked = repo.vneid_linked_account(cur, who["subject"])
        existing = repo.account_by_identifier(cur, oidc.identifier(who)) if linked is None else None
        decision = oidc.link_decision(linked, existing)
        if decision == "signin":
            account = linked
            if account["status"] != "active":
                failure = Unauthorized(*BAD_CREDENTIALS)
        elif decision == "create":
            account = oidc.new_account(str(uuid.uuid4()), who)
            try:
                with repo.savepoint(cur, "vneid_create"):
                    repo.insert_account(cur, account)
                    repo.insert_vneid_link(cur, who["subject"], account["id"], "created")
            except psycopg2.errors.UniqueViolation:  # another sign-in of the same person won the race
                raise Conflict("vneid_retry", "Sign-in with VNeID again.") from None
            record(store, cur, f"account-{account['id']}", [oidc.account_created(account["id"], who)], ctx)
            account = repo.account_by_id(cur, account["id"])
        else:
            if repo.vneid_link_of_account(cur, existing["id"]) is not None:  # linked to another subject
                raise Conflict("vneid_other_identity", "This account is linked to another VNeID identity.")
            link_token, token_hash = oidc.new_secret()
            repo.insert_vneid_pending_link(cur, token_hash, existing["id"], who["subject"], who["level"],
                                           now() + dt.timedelta(seconds=provider.settings.link_ttl_s))
            failure = oidc.link_required(link_token, existing, provider.settings.link_ttl_s)
        if failure is None:
            result = _signed_in(cur, store, key, settings, account, who["level"], context, ctx)
    if failure is not None:
        raise failure
    return result


def _signed_in(cur, store: EventStore, key: SigningKey, settings: Settings, account: dict, level: int,
               context: dict | None, ctx: EventContext) -> dict:
    """Record the level of this sign-in on the account and issue its tokens (which carry it)."""
    repo.set_assurance_level(cur, account["id"], level)
    repo.clear_failures(cur, "account", str(account["id"]))
    account = {**account, "assurance_level": level}
    record(store, cur, f"account-{account['id']}", [oidc.signed_in(account, level, client_ip(context))], ctx)
    return {**sessions.issue(cur, key, settings, account, assurance_level=level), "assurance_level": level}


def link(db: Database, store: EventStore, key: SigningKey, adapters: Adapters, settings: Settings, raw: dict,
         context: dict | None, ctx: EventContext) -> dict:
    """Prove the account is the caller's, then link it to the VNeID identity and sign in.

    ``method: otp`` without ``otp`` sends a code to the account's registered phone (202-like
    answer); with ``otp`` it checks it. ``method: password`` checks the account's password (its
    failures count towards the account's lockout, like a password sign-in's)."""
    data = load(VneidLinkBody, raw)
    token_hash = oidc.secret_hash(data["link_token"])
    invalid = Unauthorized(*oidc.LINK_INVALID)
    with db.transaction() as cur:
        pending = repo.vneid_pending_link(cur, token_hash)
        if pending is None:
            raise invalid
        account = repo.account_by_id(cur, pending["account_id"])
        refuse_if_locked(cur, str(account["id"]), source_key(context))
    if data["method"] == "otp" and not data.get("otp"):
        return _send_link_code(db, adapters, settings, pending, account, token_hash)
    good = False
    if data["method"] == "password":
        if not data.get("password"):
            raise InvalidInput("validation_failed", "Give the account's password.",
                               [{"field": "password", "message": "Required for method=password."}])
        good = off_loop(passwords.verify_password, account["password_hash"], data["password"], settings.argon2)
    failure: ServiceError | None = None
    with db.transaction() as cur:
        pending = repo.vneid_pending_link(cur, token_hash)
        if pending is None:
            raise invalid
        if data["method"] == "otp":
            live = pending["otp_hash"] is not None and pending["otp_expires_at"] > now()
            good = live and otp.matches(str(pending["account_id"]), data["otp"], pending["otp_hash"])
        account = repo.account_by_id(cur, pending["account_id"], for_update=True)
        if not good or account["status"] != "active":
            repo.count_vneid_link_failure(cur, token_hash, settings.otp_attempts)
            register_failure(cur, store, settings, str(account["id"]), str(account["id"]), context, "password",
                             "bad_otp" if data["method"] == "otp" else "bad_credentials", ctx)
            failure = Unauthorized(*BAD_CREDENTIALS)
        else:
            repo.finish_vneid_pending_link(cur, token_hash)
            try:
                with repo.savepoint(cur, "vneid_link"):
                    repo.insert_vneid_link(cur, pending["subject"], account["id"], data["method"])
            except psycopg2.errors.UniqueViolation:
                raise Conflict("vneid_other_identity", "This account or identity is linked already.") from None
            record(store, cur, f"account-{account['id']}",
                   [oidc.linked(account["id"], data["method"], pending["level"])], ctx)
            result = _signed_in(cur, store, key, settings, account, pending["level"], context, ctx)
    if failure is not None:
        raise failure
    return result


def _send_link_code(db: Database, adapters: Adapters, settings: Settings, pending: dict, account: dict,
                    token_hash: bytes) -> dict:
    if not account.get("phone"):
        raise InvalidInput("no_phone", "The account has no registered phone; prove it with its password.")
    code = otp.new_code()
    with db.transaction() as cur:
        codes.check_send_budget(cur, account["phone"])
        repo.set_vneid_link_code(cur, token_hash, otp.code_hash(str(pending["account_id"]), code),
                                 now() + dt.timedelta(seconds=settings.otp_ttl_s))
    return {"status": "otp_sent", **codes.send(adapters.sms, account["phone"], code, settings.otp_ttl_s)}


def backchannel_logout(db: Database, store: EventStore, provider: VneidProvider | None, raw: dict,
                       ctx: EventContext) -> dict:
    """OpenID Connect back-channel logout: end every session of the subject's account."""
    provider = _require(provider)
    data = load(VneidLogoutBody, raw)
    claims = provider.verify_logout_token(data["logout_token"])
    with db.transaction() as cur:
        if not repo.remember_logout_token(cur, str(claims["jti"])[:200]):
            raise Unauthorized("vneid_token_invalid", "This logout token was used already.")
        account = repo.vneid_linked_account(cur, str(claims.get("sub") or "")) if claims.get("sub") else None
        if account is None:  # nothing of ours signed in as it: acknowledged, nothing to end
            return {"sessions_ended": 0}
        ended = repo.revoke_account_session_ids(cur, account["id"], "logout")
        events = [oidc.logout_received(account["id"], len(ended)),
                  signed_out(account["id"], "logout", ended, all_sessions=True)]
        record(store, cur, f"account-{account['id']}", events, ctx)
    return {"sessions_ended": len(ended)}


def dev_identity(settings: Settings, vneid: VneidSettings, raw: dict) -> dict:
    """Add a test identity to the local VNeID stand-in (only with ``LOCAL_ADAPTERS``)."""
    if not settings.local_adapters or not vneid.enabled:
        raise NotFound("not_found", "Not found.")
    data = load(VneidIdentityBody, raw)
    body = {**data, "date_of_birth": data["date_of_birth"].isoformat()}
    try:
        resp = requests.post(f"{vneid.issuer}/dev/identities", json=body, timeout=vneid.http_timeout_s)
    except requests.RequestException:
        raise Unavailable("vneid_unavailable", "The local VNeID stand-in is not running.") from None
    if resp.status_code != 201:
        raise Unavailable("vneid_unavailable", "The local VNeID stand-in refused the identity.")
    out = resp.json()
    return {k: out.get(k) for k in ("cccd", "full_name", "date_of_birth", "gender", "phone", "level", "tax_code")
            if out.get(k) is not None}
