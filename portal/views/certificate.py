"""Registering and signing in with a digital-signature SIM or USB token (chứng thư số).

The gateway hands out a challenge; the citizen signs its text with the token's own signing
tool, then pastes or uploads the certificate and pastes the signature. The challenge id stays
in the server-side session, never in the page: the form carries only a random reference to
the challenge it showed, so a stale form (another tab, an earlier text) is refused before it
reaches the API and a browser cannot name a challenge of its own. The identity service
consumes a challenge at the first attempt whatever its outcome, so the portal forgets it
after every attempt and the page shows a fresh one.

Certificates are only shaped here (PEM blocks or DER, a bundle's first one the holder's, the
rest its issuing CAs): the identity service verifies chain, dates, revocation and signature.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
import time

from flask import request, session
from flask_babel import gettext as _

from portal.api import ApiError
from portal.labels import _l
from portal.views import public

METHOD = "chung-thu-so"  # the ``cach`` of the registration and sign-in pages
FILE_ACCEPT = ".pem,.cer,.crt,.der,application/x-x509-ca-cert,application/pkix-cert,application/x-pem-file"
MAX_FILE_BYTES = 64 * 1024
MAX_CERT_CHARS = 20_000  # the API's limit for one certificate's PEM
MAX_CHAIN = 5  # issuing CAs after the holder's certificate, as the API allows
MAX_SIGNATURE_CHARS = 4096
FRESH_FOR_S = 60  # a challenge with less left than this is replaced before it is shown
PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)

CHALLENGE_ERRORS = {"challenge_invalid", "challenge_replayed", "challenge_expired"}
CERTIFICATE_ERRORS = {  # msgids, translated when shown
    "certificate_invalid": _l("The certificate cannot be read. Choose the certificate file your token's tool exports."),
    "certificate_untrusted": _l("The certificate was not issued by a certification authority the portal trusts."),
    "certificate_expired": _l("The certificate has expired. Ask your certification authority for a new one."),
    "certificate_not_yet_valid": _l("The certificate is not valid yet."),
    "certificate_key_usage": _l("This certificate is not meant for digital signatures."),
    "certificate_revoked": _l("The certificate has been revoked by its certification authority."),
    "revocation_status_unknown": _l(
        "Whether the certificate is revoked cannot be checked now. Please try again later."),
    "certificate_no_identifier": _l("The certificate names no CCCD number or tax code."),
    "certificate_key_unsupported": _l("The certificate's key type is not supported."),
    "account_exists": _l("An account already exists for this certificate's holder. Sign in instead."),
    "invalid_credentials": _l("No account can sign in with this certificate. If you have none yet, register first."),
}


def challenge(purpose: str) -> dict:
    """The challenge to show for ``purpose`` (``register`` or ``login``): the session's own
    while it has time left (a reload keeps what the citizen may have signed), else a new one."""
    held = session.get(f"cert_challenge_{purpose}")
    if held and held.get("ref") and held.get("until", 0) - time.time() > FRESH_FOR_S:
        return held
    issued = public("POST", "/api/v1/auth/challenge", json={"purpose": purpose})
    held = {"id": issued["challenge_id"], "ref": secrets.token_urlsafe(16), "text": issued["challenge"],
            "until": time.time() + int(issued.get("expires_in") or 300)}
    session[f"cert_challenge_{purpose}"] = held
    return held


def take_challenge(purpose: str, errors: list[tuple[str, str]]) -> str | None:
    """The id of the session's challenge for one attempt, when the form was made with it (its
    ``challenge_ref``) and it has time left; it leaves the session (the attempt consumes it,
    whatever the outcome).
    Otherwise None and an error: a stale form, or nothing held, never reaches the API."""
    key = f"cert_challenge_{purpose}"
    held = session.get(key)
    sent = request.form.get("challenge_ref", "")
    if held and held.get("until", 0) <= time.time():
        session.pop(key, None)
        held = None
    if not held or not sent or not hmac.compare_digest(sent.encode(), str(held.get("ref", "")).encode()):
        errors.append(("f-challenge", _("The text to sign has expired or was already used. A new one is "
                                        "shown: sign it and send the new signature.")))
        return None
    session.pop(key, None)
    return held["id"]


def minutes_left(held: dict) -> int:
    """Whole minutes the challenge has left, rounded, never 0 (the page says "within N minutes")."""
    return max(1, round((held.get("until", 0) - time.time()) / 60))


def _der_length_ok(der: bytes) -> bool:
    """Whether ``der`` is exactly one DER SEQUENCE (a certificate's outer shape)."""
    if len(der) < 2 or der[0] != 0x30:
        return False
    first = der[1]
    if first < 0x80:
        return len(der) == 2 + first
    size = first & 0x7F
    if not 1 <= size <= 3 or len(der) < 2 + size:
        return False
    return len(der) == 2 + size + int.from_bytes(der[2:2 + size], "big")


def _pem(der: bytes) -> str:
    body = base64.b64encode(der).decode()
    lines = "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----\n"


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def certificates_from(data: bytes) -> tuple[list[str], str | None]:
    """The certificates (PEM, holder's first) in a pasted text or an uploaded file: PEM, DER,
    or base64 of DER; else ([], a message for people)."""
    if b"PRIVATE KEY" in data:
        return [], _("This is a private key: never give it to anyone. Choose the certificate instead.")
    if b"-----BEGIN" not in data:
        der = data if _der_length_ok(data) else _b64(data.decode("ascii", "replace"))
        if der is not None and _der_length_ok(der):
            return [_pem(der)], None
        return [], _("This is not a certificate. Choose a .pem, .cer or .crt file, or paste the text "
                     "that starts with -----BEGIN CERTIFICATE-----.")
    blocks = PEM_BLOCK.findall(data.decode("ascii", "replace"))
    ders = [_b64(body) for label, body in blocks if label == "CERTIFICATE"]
    if not ders or len(ders) != len(blocks) or not all(d is not None and _der_length_ok(d) for d in ders):
        return [], _("This is not a certificate. Choose a .pem, .cer or .crt file, or paste the text "
                     "that starts with -----BEGIN CERTIFICATE-----.")
    if len(ders) > 1 + MAX_CHAIN:
        return [], _("At most %(count)s certificates: yours, then the authorities that issued it.",
                     count=1 + MAX_CHAIN)
    return [_pem(der) for der in ders], None  # type: ignore[arg-type]


def read_certificate(errors: list[tuple[str, str]]) -> list[str]:
    """The certificate and its issuing CAs from the form: the uploaded file when one was
    chosen, else the pasted text. A problem is added to ``errors`` (field ``f-certificate``)."""
    upload = request.files.get("certificate_file")
    if upload is not None and upload.filename:
        data = upload.stream.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            errors.append(("f-certificate_file", _("The file is larger than %(size)s KB.",
                                                   size=MAX_FILE_BYTES // 1024)))
            return []
        field = "f-certificate_file"
    else:
        data = request.form.get("certificate_pem", "").strip().encode("utf-8", "replace")
        field = "f-certificate"
        if not data:
            errors.append((field, _("Paste your certificate or choose its file.")))
            return []
    pems, problem = certificates_from(data) if data else ([], _("The file is empty."))
    if problem or any(len(p) > MAX_CERT_CHARS for p in pems):
        errors.append((field, problem or _("The certificate is too large.")))
        return []
    return pems


def read_signature(errors: list[tuple[str, str]]) -> str:
    """The pasted signature, whitespace removed; a problem is added to ``errors``."""
    signature = "".join(request.form.get("signature", "").split())
    if not signature:
        errors.append(("f-signature", _("Paste the signature of the text to sign.")))
    elif len(signature) > MAX_SIGNATURE_CHARS or _b64(signature) is None:
        errors.append(("f-signature", _("The signature must be the base64 text your signing tool gives.")))
    return signature


def refusal(err: ApiError, certificate_field: str) -> list[tuple[str, str]]:
    """What the gateway's refusal of a proof means for the form: (field id, message) pairs."""
    if err.code in CHALLENGE_ERRORS:
        return [("f-challenge", _("The text to sign has expired or was already used. A new one is shown: "
                                  "sign it and send the new signature."))]
    if err.code == "signature_invalid":
        return [("f-signature", _("The signature does not match the text to sign with this certificate. "
                                  "A new text is shown: sign it and send the new signature."))]
    if err.code == "invalid_phone":
        return [("f-phone", _("Enter a Vietnamese mobile phone number, or leave it empty."))]
    if err.code == "certificate_wrong_holder":
        return [("f-account_type", _("This certificate belongs to another kind of account: choose the "
                                     "right account type."))]
    if err.code in CERTIFICATE_ERRORS:
        return [(certificate_field, _(CERTIFICATE_ERRORS[err.code]))]
    fields = {"certificate_pem": certificate_field, "chain_pem": certificate_field,
              "challenge_id": "f-challenge"}
    found = [(fields.get(k, f"f-{k}"), v) for k, v in err.field_errors().items()]
    return found or [(certificate_field, _("The certificate or the signature was refused."))]
