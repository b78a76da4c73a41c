"""Events published by the identity service (exchange ``identity.events``).

For auditing and for services that need an applicant's profile. Stream ``account-<id>``
(sign-in failures for identifiers no account has go to ``signin-<source>``). No password,
one-time code, refresh token, challenge or key ever appears in a payload: the schemas hold no
field that could carry one, and unknown fields are refused.
"""

from __future__ import annotations

import datetime as dt

from marshmallow import RAISE, ValidationError, fields, validate, validates_schema

from portal_common.contracts import CATALOGUE
from portal_common.contracts.fields import Utf8Schema

PRODUCER = "identity"
ROLES = ("citizen", "business", "officer", "agency_system", "editor", "operator")
REGISTRATION_METHODS = ("mobile", "bhxh", "certificate")
SIGNIN_METHODS = ("password", "certificate", "refresh", "dev")
_NAME = validate.Length(min=1, max=200)


class _Strict(Utf8Schema):
    """Unknown fields refused, and text that is not valid Unicode (a lone surrogate) anywhere."""

    class Meta:
        unknown = RAISE


@CATALOGUE.register("CitizenRegistered", 1, PRODUCER, "A citizen account was created (CCCD verified).")
class CitizenRegisteredV1(_Strict):
    account_id = fields.String(required=True)
    cccd = fields.String(required=True, validate=validate.Regexp(r"^\d{12}$"))
    full_name = fields.String(required=True, validate=_NAME)
    date_of_birth = fields.Date(allow_none=True, load_default=None)
    gender = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(["male", "female"]))
    phone = fields.String(allow_none=True, load_default=None)
    method = fields.String(required=True, validate=validate.OneOf(REGISTRATION_METHODS))
    certificate_kind = fields.String(allow_none=True, load_default=None,
                                     validate=validate.OneOf(["sim", "usb_token"]))


@CATALOGUE.register("BusinessRegistered", 1, PRODUCER, "A business account was created (tax code verified).")
class BusinessRegisteredV1(_Strict):
    account_id = fields.String(required=True)
    tax_code = fields.String(required=True, validate=validate.Regexp(r"^\d{10}(\d{3})?$"))
    name = fields.String(required=True, validate=_NAME)
    representative_cccd = fields.String(allow_none=True, load_default=None)
    method = fields.String(required=True, validate=validate.OneOf(REGISTRATION_METHODS))
    certificate_kind = fields.String(allow_none=True, load_default=None,
                                     validate=validate.OneOf(["sim", "usb_token"]))


@CATALOGUE.register("AccountVerified", 1, PRODUCER,
                    "An account's identity was checked with an outside party or a certificate.")
class AccountVerifiedV1(_Strict):
    account_id = fields.String(required=True)
    method = fields.String(required=True, validate=validate.OneOf(["carrier", "bhxh", "certificate", "sms"]))
    detail = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=200))


@CATALOGUE.register("SignInSucceeded", 1, PRODUCER, "An account signed in and received tokens.")
class SignInSucceededV1(_Strict):
    account_id = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    method = fields.String(required=True, validate=validate.OneOf(SIGNIN_METHODS))
    client_ip = fields.String(allow_none=True, load_default=None)


@CATALOGUE.register("SignInFailed", 1, PRODUCER, "A sign-in attempt was refused (reason code only).")
class SignInFailedV1(_Strict):
    account_id = fields.String(allow_none=True, load_default=None,
                               metadata={"description": "null when no account has the identifier"})
    method = fields.String(required=True, validate=validate.OneOf(SIGNIN_METHODS))
    reason = fields.String(required=True, validate=validate.OneOf([
        "bad_credentials", "bad_otp", "otp_expired", "locked", "bad_certificate", "bad_signature",
        "challenge_invalid", "account_disabled"]))
    client_ip = fields.String(allow_none=True, load_default=None)


@CATALOGUE.register("AccountLocked", 1, PRODUCER,
                    "Sign-in was locked for an account or a source address after repeated failures.")
class AccountLockedV1(_Strict):
    scope = fields.String(required=True, validate=validate.OneOf(["account", "source"]))
    account_id = fields.String(allow_none=True, load_default=None)
    client_ip = fields.String(allow_none=True, load_default=None)
    locked_until = fields.DateTime(required=True)
    lockouts = fields.Integer(required=True, validate=validate.Range(min=1))


@CATALOGUE.register("SignedOut", 1, PRODUCER, "A session ended: its refresh tokens were revoked.")
class SignedOutV1(_Strict):
    account_id = fields.String(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(["logout", "refresh_reuse"]))


def _session_ids() -> fields.List:
    return fields.List(fields.String(validate=validate.Length(min=1, max=64)), required=True,
                       metadata={"description": "the ended sessions: the ``sid`` claim of their access tokens, "
                                                "which the gateway refuses from now on"})


@CATALOGUE.register("SignedOut", 2, PRODUCER,
                    "One or more sessions ended: their refresh tokens were revoked and their access tokens "
                    "are refused.")
class SignedOutV2(_Strict):
    account_id = fields.String(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(["logout", "refresh_reuse", "account_disabled"]))
    session_ids = _session_ids()
    all_sessions = fields.Boolean(required=True, metadata={
        "description": "every session of the account ended (sign-out everywhere): refuse all its access tokens "
                       "issued before the event"})


@CATALOGUE.register("StaffCredentialIssued", 1, PRODUCER,
                    "A development credential was issued for a staff role (local stand-ins only).")
class StaffCredentialIssuedV1(_Strict):
    account_id = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    agency_code = fields.String(allow_none=True, load_default=None)


# -- request shapes (the gateway validates with them, identity validates again) ----------

def _no_control(value: str) -> bool:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValidationError("Control characters are not allowed.")
    return True


def _not_blank(value: str) -> bool:
    if not value.strip():
        raise ValidationError("Must not be blank.")
    return True


def _past_date(value: dt.date) -> bool:
    if value < dt.date(1900, 1, 1) or value > dt.date.today():
        raise ValidationError("Not a plausible date of birth.")
    return True


_ID_TEXT = [validate.Length(min=1, max=20), _no_control]
_PERSON_NAME = [validate.Length(min=1, max=100), _no_control]
_OTP = validate.Regexp(r"^\d{4,10}$", error="A one-time code is a few digits.")
_PEM = [validate.Length(min=1, max=20_000)]
_SIGNATURE = validate.Length(min=1, max=4096)


class RegisterMobileBody(_Strict):
    cccd = fields.String(required=True, validate=_ID_TEXT)
    full_name = fields.String(required=True, validate=_PERSON_NAME)
    date_of_birth = fields.Date(required=True, validate=_past_date)
    gender = fields.String(required=True, validate=validate.OneOf(["male", "female"]))
    phone = fields.String(required=True, validate=_ID_TEXT)
    password = fields.String(required=True, validate=validate.Length(min=1, max=256), load_only=True)
    old_id_number = fields.String(load_default=None, allow_none=True, validate=_ID_TEXT,
                                  metadata={"description": "old 9-digit CMT, to sign in with it too"})


class RegisterBhxhBody(RegisterMobileBody):
    bhxh_code = fields.String(required=True, validate=_ID_TEXT)


class ConfirmRegistrationBody(_Strict):
    registration_id = fields.UUID(required=True)
    otp = fields.String(required=True, validate=_OTP, load_only=True)


class ResendBody(_Strict):
    registration_id = fields.UUID(load_default=None, allow_none=True)
    login_id = fields.UUID(load_default=None, allow_none=True)


class ChallengeBody(_Strict):
    purpose = fields.String(load_default="login", validate=validate.OneOf(["register", "login"]))


class CertificateProofSchema(_Strict):
    certificate_pem = fields.String(required=True, validate=_PEM)
    chain_pem = fields.List(fields.String(validate=_PEM), load_default=list, validate=validate.Length(max=5),
                            metadata={"description": "intermediate CA certificates, leaf's issuer first"})
    challenge_id = fields.UUID(required=True)
    signature = fields.String(required=True, validate=_SIGNATURE,
                              metadata={"description": "base64 signature over the challenge text (UTF-8)"})


class RegisterCertificateBody(CertificateProofSchema):
    account_type = fields.String(load_default="citizen", validate=validate.OneOf(["citizen", "business"]))
    certificate_kind = fields.String(load_default="usb_token", validate=validate.OneOf(["sim", "usb_token"]))
    full_name = fields.String(load_default=None, allow_none=True, validate=_PERSON_NAME)
    business_name = fields.String(load_default=None, allow_none=True,
                                  validate=[validate.Length(min=1, max=200), _no_control])
    representative_cccd = fields.String(load_default=None, allow_none=True, validate=_ID_TEXT)
    phone = fields.String(load_default=None, allow_none=True, validate=_ID_TEXT)


class LoginBody(_Strict):
    """``method=password``: ``cccd`` (or an old 9-digit CMT) and ``password``;
    ``method=certificate``: the certificate proof fields."""

    method = fields.String(load_default="password", validate=validate.OneOf(["password", "certificate"]))
    cccd = fields.String(load_default=None, allow_none=True, validate=_ID_TEXT)
    password = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=256),
                             load_only=True)
    certificate_pem = fields.String(load_default=None, allow_none=True, validate=_PEM)
    chain_pem = fields.List(fields.String(validate=_PEM), load_default=list, validate=validate.Length(max=5))
    challenge_id = fields.UUID(load_default=None, allow_none=True)
    signature = fields.String(load_default=None, allow_none=True, validate=_SIGNATURE)

    @validates_schema
    def _method_fields(self, data: dict, **kwargs) -> None:
        needed = (("cccd", "password") if data.get("method", "password") == "password"
                  else ("certificate_pem", "challenge_id", "signature"))
        missing = {name: ["Missing data for required field."] for name in needed if not data.get(name)}
        if missing:
            raise ValidationError(missing)


class LoginConfirmBody(_Strict):
    login_id = fields.UUID(required=True)
    otp = fields.String(required=True, validate=_OTP, load_only=True)


class RefreshBody(_Strict):
    refresh_token = fields.String(required=True, validate=validate.Length(min=1, max=200), load_only=True)


class LogoutBody(_Strict):
    refresh_token = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=200),
                                  load_only=True)
    everywhere = fields.Boolean(load_default=False, metadata={"description": "end every session of the account"})


class DevTokenBody(_Strict):
    role = fields.String(required=True, validate=validate.OneOf(["officer", "agency_system", "editor", "operator"]))
    agency_code = fields.String(load_default=None, allow_none=True,
                                validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$",
                                                         error="Not a valid agency code."))

    @validates_schema
    def _agency_for_agency_roles(self, data: dict, **kwargs) -> None:
        if data["role"] in ("officer", "agency_system") and not data.get("agency_code"):
            raise ValidationError({"agency_code": ["An agency role needs an agency_code."]})
        if data["role"] in ("editor", "operator") and data.get("agency_code"):
            raise ValidationError({"agency_code": ["Only officers and agency systems belong to an agency."]})


class CarrierRecordBody(_Strict):
    phone = fields.String(required=True, validate=_ID_TEXT)
    cccd = fields.String(required=True, validate=_ID_TEXT)
    carrier = fields.String(load_default="local", validate=[validate.Length(min=1, max=40), _no_control])


class BhxhRecordBody(_Strict):
    bhxh_code = fields.String(required=True, validate=_ID_TEXT)
    cccd = fields.String(required=True, validate=_ID_TEXT)
    full_name = fields.String(required=True, validate=_PERSON_NAME)
    date_of_birth = fields.Date(required=True, validate=_past_date)


CA_PEM_MAX = 64 * 1024
CRL_MAX_BYTES = 1024 * 1024
# a CRL of CRL_MAX_BYTES as text: base64 (4 characters per 3 bytes), a line break every 64, and
# the PEM armour lines
CRL_TEXT_MAX = (CRL_MAX_BYTES + 2) // 3 * 4 * 65 // 64 + 100
_CA_PEM = [validate.Length(min=1, max=CA_PEM_MAX), _not_blank]


class TrustedCaBody(_Strict):
    certificate_pem = fields.String(required=True, validate=_CA_PEM, metadata={
        "description": "the CA certificate (PEM); only the first certificate of a bundle is read"})


class CrlBody(_Strict):
    """A certificate revocation list to import, as the ``add_crl`` RPC takes it."""

    crl = fields.String(required=True, validate=[validate.Length(min=1, max=CRL_TEXT_MAX), _not_blank], metadata={
        "description": f"the CRL as PEM text or as base64 of its DER (at most {CRL_MAX_BYTES} bytes of DER)"})
    issuer_pem = fields.String(load_default=None, allow_none=True, validate=_CA_PEM, metadata={
        "description": "the intermediate CA that signed it, then its chain up to a trusted CA (PEM); needed "
                       "the first time only, when the signer is not itself a trusted CA"})


@CATALOGUE.register("TrustedCertificateAuthorityAdded", 1, PRODUCER,
                    "An operator trusted a certificate authority: signing certificates it issued can register "
                    "and sign in.")
class TrustedCertificateAuthorityAddedV1(_Strict):
    subject = fields.String(required=True, validate=validate.Length(min=1, max=500),
                            metadata={"description": "the CA's distinguished name (RFC 4514)"})
    fingerprint = fields.String(required=True, validate=validate.Regexp(r"^[0-9a-f]{64}$"),
                                metadata={"description": "SHA-256 of the CA certificate's DER, hex"})
    not_after = fields.DateTime(required=True, metadata={"description": "the end of the CA certificate's validity"})


_STAFF_ROLES = ("officer", "editor", "operator")


class _StaffAccount(_Strict):
    """Which staff account an event is about."""

    account_id = fields.String(required=True)
    username = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(_STAFF_ROLES))
    agency_code = fields.String(allow_none=True, load_default=None)


class _StaffStatusChange(_StaffAccount):
    """An operator disabled or reinstated a staff account, and why."""

    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


@CATALOGUE.register("StaffAccountCreated", 1, PRODUCER,
                    "An operator created a staff account (officer, editor, operator); it waits for activation.")
class StaffAccountCreatedV1(_StaffAccount):
    pass


@CATALOGUE.register("StaffAccountActivated", 1, PRODUCER, "A staff member confirmed their phone and set a password.")
class StaffAccountActivatedV1(_Strict):
    account_id = fields.String(required=True)


@CATALOGUE.register("AgencySystemRegistered", 1, PRODUCER,
                    "Client credentials were issued to an agency's back-office system.")
class AgencySystemRegisteredV1(_Strict):
    account_id = fields.String(required=True)
    client_id = fields.String(required=True)
    agency_code = fields.String(required=True)
    name = fields.String(required=True)


@CATALOGUE.register("AgencySystemRevoked", 1, PRODUCER, "An agency system's client credentials were revoked.")
class AgencySystemRevokedV1(_Strict):
    account_id = fields.String(required=True)
    client_id = fields.String(required=True)
    agency_code = fields.String(required=True)


@CATALOGUE.register("CertificateRevocationListImported", 1, PRODUCER,
                    "An operator imported a certificate authority's revocation list (CRL): signing certificates "
                    "it revokes can no longer register or sign in.")
class CertificateRevocationListImportedV1(_Strict):
    issuer = fields.String(required=True, validate=validate.Length(min=1, max=500),
                           metadata={"description": "the issuing CA's distinguished name (RFC 4514)"})
    issuer_id = fields.String(required=True, validate=validate.Regexp(r"^[0-9a-f]{64}$"),
                              metadata={"description": "SHA-256 of the issuer name's DER"})
    crl_number = fields.String(allow_none=True, load_default=None, validate=validate.Regexp(r"^\d{1,50}$"),
                               metadata={"description": "the CRL number (decimal text; null when absent)"})
    this_update = fields.DateTime(required=True)
    next_update = fields.DateTime(allow_none=True, load_default=None)
    revoked_count = fields.Integer(required=True, validate=validate.Range(min=0))


@CATALOGUE.register("StaffAccountDisabled", 1, PRODUCER,
                    "An operator disabled a staff account: its sessions ended, its access tokens are refused "
                    "and it cannot sign in until reinstated.")
class StaffAccountDisabledV1(_StaffStatusChange):
    pass


@CATALOGUE.register("StaffAccountReinstated", 1, PRODUCER,
                    "An operator reinstated a disabled staff account: it can sign in again (old tokens stay "
                    "refused).")
class StaffAccountReinstatedV1(_StaffStatusChange):
    pass


_USERNAME = validate.Regexp(r"^[a-z0-9][a-z0-9._-]{2,39}$", error="3-40 lower-case letters, digits, '.', '_', '-'.")
_AGENCY = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$", error="Not a valid agency code.")


class NewStaffBody(_Strict):
    username = fields.String(required=True, validate=_USERNAME)
    role = fields.String(required=True, validate=validate.OneOf(["officer", "editor", "operator"]))
    agency_code = fields.String(load_default=None, allow_none=True, validate=_AGENCY)
    full_name = fields.String(required=True, validate=_PERSON_NAME)
    phone = fields.String(required=True, validate=_ID_TEXT)

    @validates_schema
    def _agency_for_officers(self, data: dict, **kwargs) -> None:
        if data["role"] == "officer" and not data.get("agency_code"):
            raise ValidationError({"agency_code": ["An officer belongs to an agency."]})
        if data["role"] != "officer" and data.get("agency_code"):
            raise ValidationError({"agency_code": ["Only officers belong to an agency."]})


class StaffStatusBody(_Strict):
    """Why an operator disables or reinstates a staff account (kept in the account's events)."""

    reason = fields.String(required=True, validate=[validate.Length(min=1, max=500), _no_control, _not_blank])


class StaffListQuery(_Strict):
    agency_code = fields.String(load_default=None, validate=_AGENCY)
    status = fields.String(load_default=None, validate=validate.OneOf(["pending", "active", "disabled"]))
    role = fields.String(load_default=None, validate=validate.OneOf(_STAFF_ROLES))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    page_size = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class ActivateStaffBody(_Strict):
    username = fields.String(required=True, validate=_USERNAME)
    otp = fields.String(required=True, validate=_OTP, load_only=True)
    password = fields.String(required=True, validate=validate.Length(min=1, max=256), load_only=True)


class StaffLoginBody(_Strict):
    username = fields.String(required=True, validate=_USERNAME)
    password = fields.String(required=True, validate=validate.Length(min=1, max=256), load_only=True)


class NewAgencySystemBody(_Strict):
    agency_code = fields.String(required=True, validate=_AGENCY)
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), _no_control])


class ClientCredentialsBody(_Strict):
    grant_type = fields.String(load_default="client_credentials", validate=validate.Equal("client_credentials"))
    client_id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    client_secret = fields.String(required=True, validate=validate.Length(min=1, max=200), load_only=True)


@CATALOGUE.register("PasswordChanged", 1, PRODUCER,
                    "An account's password was changed by its owner or reset with a code; its sessions ended.")
class PasswordChangedV1(_Strict):
    account_id = fields.String(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(["change", "reset"]))


@CATALOGUE.register("PasswordChanged", 2, PRODUCER,
                    "An account's password was changed by its owner or reset with a code; its sessions ended "
                    "and every access token issued before is refused.")
class PasswordChangedV2(_Strict):
    account_id = fields.String(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(["change", "reset"]))
    session_ids = _session_ids()


class ForgotPasswordBody(_Strict):
    cccd = fields.String(required=True, validate=[validate.Length(min=1, max=40), _no_control],
                         metadata={"description": "CCCD, old CMT, or a staff username"})


class ResetPasswordBody(_Strict):
    reset_id = fields.UUID(required=True)
    otp = fields.String(required=True, validate=_OTP, load_only=True)
    new_password = fields.String(required=True, validate=validate.Length(min=1, max=256), load_only=True)


class ChangePasswordBody(_Strict):
    current_password = fields.String(required=True, validate=validate.Length(min=1, max=256), load_only=True)
    new_password = fields.String(required=True, validate=validate.Length(min=1, max=256), load_only=True)


# -- applicant notifications -------------------------------------------------------------

@CATALOGUE.register("ApplicantNotified", 1, PRODUCER,
                    "An applicant was sent an SMS about one of their dossier's events (the number masked; the "
                    "text, which names only the code and the status, is not kept in the event).")
class ApplicantNotifiedV1(_Strict):
    account_id = fields.String(required=True)
    dossier_code = fields.String(required=True)
    dossier_event_type = fields.String(required=True, metadata={"description": "the dossier event it tells of"})
    channel = fields.String(required=True, validate=validate.OneOf(["sms"]))
    sent_to = fields.String(required=True, validate=validate.Regexp(r"^\d{0,2}\**\d{0,2}$"),
                            metadata={"description": "the phone number, masked (``09******78``)"})


class NotificationPreferencesBody(_Strict):
    notify_sms = fields.Boolean(required=True, metadata={
        "description": "send an SMS when a dossier of mine needs me or has news (on by default)"})


@CATALOGUE.register("NotificationPreferencesChanged", 1, PRODUCER,
                    "An applicant turned SMS about their dossiers' steps on or off.")
class NotificationPreferencesChangedV1(_Strict):
    account_id = fields.String(required=True)
    notify_sms = fields.Boolean(required=True, metadata={"description": "the new choice"})
