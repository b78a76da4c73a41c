"""Sign-in with VNeID (pure): what the provider's verified claims must say, the assurance level
they carry, who they may sign in as, and the account and events a first sign-in makes.

The signature, issuer, audience, expiry and nonce are checked with the JOSE library against
the provider's keys (``adapters/vneid.py``); the rules here come after: an ID token and the
userinfo answer must name the same subject, the person's CCCD must be well formed, and a claim
alone never takes over an account: a CCCD that already has an account is linked only once the
holder proves the account is theirs (``link_decision``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from portal_common.errors import Conflict, Unauthorized
from portal_common.eventstore.events import NewEvent
from services.identity.domain import ids

LEVELS = (1, 2)
# acr values the provider may send for each level (Decree 69/2024: level 1 and level 2)
ACR_LEVELS = {"1": 1, "2": 2, "level1": 1, "level2": 2, "muc1": 1, "muc2": 2}
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
MAX_ID_TOKEN_AGE_S = 600  # an ID token issued longer ago than this is stale, whatever its exp
GENDERS = {"male": "male", "female": "female", "nam": "male", "nữ": "female", "nu": "female"}

TOKEN_REFUSED = ("vneid_token_invalid", "The provider's answer could not be verified; sign in again.")
CLAIMS_REFUSED = ("vneid_claims_invalid", "The provider's identity claims are incomplete or not valid.")
STATE_INVALID = ("vneid_state_invalid", "The sign-in is unknown, used or expired; start again.")
LINK_REQUIRED = ("vneid_link_required",
                 "An account already exists for this CCCD: prove it is yours (a one-time code to its phone, or its "
                 "password) to link it to VNeID.")
LINK_INVALID = ("vneid_link_invalid", "The link request is unknown, used or expired; sign in with VNeID again.")


def refused(reason: str = TOKEN_REFUSED[1]) -> Unauthorized:
    return Unauthorized(TOKEN_REFUSED[0], reason)


def assurance_level(acr) -> int:
    """The level (1 or 2) an ``acr`` value states; anything else is refused, never guessed."""
    level = ACR_LEVELS.get(str(acr).strip().lower()) if acr is not None else None
    if level is None:
        raise Unauthorized(CLAIMS_REFUSED[0], "The provider stated no known assurance level.")
    return level


def check_id_token(claims: dict, client_id: str, now: float) -> None:
    """What OpenID Connect Core §3.1.3.7 asks beyond the library's checks: with several audiences
    the authorized party is us, and the token was issued lately (not merely not expired)."""
    aud = claims.get("aud")
    if isinstance(aud, list) and (len(aud) > 1 or "azp" in claims) and claims.get("azp") != client_id:
        raise refused()
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or iat < now - MAX_ID_TOKEN_AGE_S:
        raise refused()


def check_logout_token(claims: dict) -> None:
    """OpenID Connect Back-Channel Logout §2.6: the logout event present, no nonce, a sub or sid."""
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_EVENT), dict):
        raise refused("Not a logout token.")
    if "nonce" in claims or not (claims.get("sub") or claims.get("sid")) or not claims.get("jti"):
        raise refused("Not a logout token.")


def person(id_claims: dict, userinfo: dict | None) -> dict:
    """The person the verified claims describe (userinfo adds to the ID token, for the same subject)."""
    subject = id_claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise Unauthorized(*CLAIMS_REFUSED)
    merged = dict(id_claims)
    if userinfo:
        if userinfo.get("sub") != subject:  # OpenID Connect Core §5.3.2: else it must not be used
            raise Unauthorized(*CLAIMS_REFUSED)
        merged.update({k: v for k, v in userinfo.items() if v not in (None, "")})
    cccd = str(merged.get("cccd") or "")
    name = ids.clean_name(str(merged.get("name") or ""))[:100]
    if not ids.is_cccd(cccd) or not name:
        raise Unauthorized(*CLAIMS_REFUSED)
    born = None
    if merged.get("birthdate"):
        try:
            born = dt.date.fromisoformat(str(merged["birthdate"]))
        except ValueError:
            raise Unauthorized(*CLAIMS_REFUSED) from None
    phone = ids.normalize_phone(str(merged["phone_number"])) if merged.get("phone_number") else None
    out = {"subject": subject, "cccd": cccd, "full_name": name, "date_of_birth": born,
           "gender": GENDERS.get(str(merged.get("gender") or "").strip().lower()), "phone": phone,
           "level": assurance_level(id_claims.get("acr")), "role": "citizen", "tax_code": None}
    if merged.get("account_type") == "organization":
        tax = ids.normalize_tax_code(str(merged.get("tax_code") or ""))
        org = ids.clean_name(str(merged.get("organization_name") or ""))[:200]
        if not ids.is_tax_code(tax) or not org:
            raise Unauthorized(*CLAIMS_REFUSED)
        out.update(role="business", tax_code=tax, organization_name=org)
    return out


def identifier(who: dict) -> str:
    """What the account is known by: the CCCD, or an organisation's tax code."""
    return who["tax_code"] if who["role"] == "business" else who["cccd"]


def link_decision(linked_account: dict | None, same_identifier: dict | None) -> str:
    """``signin`` (the subject is linked), ``create`` (no account has this identifier) or
    ``link_required`` (one has: its holder must prove it first)."""
    if linked_account is not None:
        return "signin"
    if same_identifier is None:
        return "create"
    return "link_required"


def link_required(link_token: str, account: dict, expires_in: int) -> Conflict:
    """The 409 the caller answers by proving the account is theirs (``POST /auth/vneid/link``)."""
    methods = [m for m, ok in (("otp", bool(account.get("phone"))), ("password", bool(account.get("password_hash"))))
               if ok]
    return Conflict(LINK_REQUIRED[0], LINK_REQUIRED[1], {
        "link_token": link_token, "proof_methods": methods, "expires_in": expires_in,
        "otp_sent_to": ids.mask_phone(account["phone"]) if account.get("phone") else None})


def new_secret() -> tuple[str, bytes]:
    """An opaque single-use value (state, link token) and the hash kept of it."""
    value = secrets.token_urlsafe(32)
    return value, secret_hash(value)


def secret_hash(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def same_secret(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(bytes(a), bytes(b))


def new_account(account_id: str, who: dict) -> dict:
    """The account row a first VNeID sign-in creates (no password: VNeID is its way in)."""
    row = {"id": account_id, "role": who["role"], "identifier": identifier(who), "full_name": who["full_name"],
           "date_of_birth": who["date_of_birth"], "gender": who["gender"], "phone": who["phone"],
           "methods": ["vneid"], "assurance_level": who["level"]}
    if who["role"] == "business":
        row.update(full_name=who["organization_name"], representative_cccd=who["cccd"], date_of_birth=None,
                   gender=None)
    return row


def account_created(account_id: str, who: dict) -> NewEvent:
    return NewEvent("VneidAccountCreated", {
        "account_id": account_id, "role": who["role"], "cccd": who["cccd"],
        "full_name": who["organization_name"] if who["role"] == "business" else who["full_name"],
        "date_of_birth": who["date_of_birth"].isoformat() if who["date_of_birth"] else None,
        "gender": who["gender"], "phone": who["phone"], "tax_code": who["tax_code"],
        "assurance_level": who["level"]})


def signed_in(account: dict, level: int, client_ip: str | None) -> NewEvent:
    return NewEvent("VneidSignedIn", {"account_id": str(account["id"]), "role": account["role"],
                                      "assurance_level": level, "client_ip": client_ip})


def linked(account_id, proof: str, level: int) -> NewEvent:
    return NewEvent("VneidLinked", {"account_id": str(account_id), "proof": proof, "assurance_level": level})


def logout_received(account_id, sessions_ended: int) -> NewEvent:
    return NewEvent("VneidLogoutReceived", {"account_id": str(account_id), "sessions_ended": sessions_ended})
