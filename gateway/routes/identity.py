"""Endpoints of the identity part of API.md: registration, sign-in, tokens, me, JWKS.

The bodies are validated here with identity's own request schemas
(``portal_common.contracts.identity``) and again by the service, which owns every decision.
Passwords, codes and tokens are ``load_only`` in those schemas, so no response or
problem can echo them.
"""

from __future__ import annotations

import json

from marshmallow import Schema, fields
from werkzeug.wrappers import Response

from gateway.http.auth import APPLICANT_ROLES, ROLES
from gateway.http.route import ApiCall, api, raw_body
from portal_common.contracts.identity import (
    ActivateStaffBody,
    ChallengeBody,
    ChangePasswordBody,
    ClientCredentialsBody,
    ConfirmRegistrationBody,
    CrlBody,
    ForgotPasswordBody,
    LoginBody,
    LoginConfirmBody,
    LogoutBody,
    NewAgencySystemBody,
    NewStaffBody,
    NotificationPreferencesBody,
    RefreshBody,
    RegisterBhxhBody,
    RegisterCertificateBody,
    RegisterMobileBody,
    ResendBody,
    ResetPasswordBody,
    StaffListQuery,
    StaffLoginBody,
    StaffStatusBody,
    TrustedCaBody,
)

TAGS = ("identity",)
STAFF_TAGS = ("identity: staff and agency systems",)
PKI_TAGS = ("identity: signing-certificate trust",)
OPERATOR = ("operator",)


class CodeSent(Schema):
    registration_id = fields.String()
    login_id = fields.String()
    method = fields.String()
    next = fields.String()
    otp_sent_to = fields.String(metadata={"description": "the phone number, masked"})
    expires_in = fields.Integer(metadata={"description": "seconds the code stays valid"})


class Registered(Schema):
    account_id = fields.String()
    role = fields.String()
    status = fields.String()
    method = fields.String()


class Tokens(Schema):
    access_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()
    refresh_token = fields.String()
    refresh_expires_in = fields.Integer()
    account_id = fields.String()
    role = fields.String()


class Challenge(Schema):
    challenge_id = fields.String()
    challenge = fields.String(metadata={"description": "sign these exact characters (UTF-8)"})
    expires_in = fields.Integer()


class Account(Schema):
    account_id = fields.String()
    role = fields.String()
    identifier = fields.String()
    full_name = fields.String()
    date_of_birth = fields.String(allow_none=True)
    gender = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    agency_code = fields.String(allow_none=True)
    methods = fields.List(fields.String())
    status = fields.String()
    created_at = fields.String()
    cccd = fields.String(allow_none=True)
    old_id_number = fields.String(allow_none=True)
    bhxh_code = fields.String(allow_none=True)
    tax_code = fields.String(allow_none=True)
    representative_cccd = fields.String(allow_none=True)
    assurance_level = fields.Integer(allow_none=True, metadata={
        "description": "the VNeID level (1 or 2) of the account's last sign-in with VNeID; null: never"})


class NotificationPreferences(Schema):
    notify_sms = fields.Boolean(metadata={"description": "SMS when a dossier of mine needs me or has news"})
    sms_to = fields.String(allow_none=True, metadata={
        "description": "where they go, masked; null when none would (a business account, no phone)"})


_REG = {409: "Already registered", 422: "Refused (see code)", 429: "Too many codes", 503: "Registry unavailable"}
_OTP = {400: "Wrong, expired or used code", 404: "Unknown id", 409: "Already registered", 429: "Locked"}


class StaffStatus(Schema):
    account_id = fields.String()
    username = fields.String()
    status = fields.String(metadata={"description": "disabled, active, or pending (never activated)"})
    sessions_ended = fields.Integer(metadata={"description": "on disabling: the sessions it ended"})


class StaffView(Schema):
    account_id = fields.String()
    username = fields.String()
    role = fields.String()
    full_name = fields.String()
    agency_code = fields.String(allow_none=True)
    status = fields.String()
    created_at = fields.String()
    disabled_at = fields.String(allow_none=True, metadata={"description": "the last time it was disabled"})


class StaffList(Schema):
    items = fields.List(fields.Nested(StaffView))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


_STAFF_STATUS_ERRORS = {404: "No staff account has this id", 409: "Already in that state, or the "
                        "operator's own account", 422: "Invalid input"}


class TrustedCa(Schema):
    subject = fields.String(metadata={"description": "distinguished name (RFC 4514)"})
    issuer = fields.String(metadata={"description": "distinguished name (RFC 4514); the subject when self-signed"})
    serial = fields.String(metadata={"description": "serial number, hex"})
    not_before = fields.String()
    not_after = fields.String()
    fingerprint = fields.String(metadata={"description": "SHA-256 of the certificate's DER, hex"})
    source = fields.String(metadata={"description": "file (TRUSTED_CA_FILE) or added (by an operator)"})
    added_at = fields.String(allow_none=True)
    status = fields.String(metadata={"description": "on adding: added, or unchanged when trusted already"})


class TrustedCaList(Schema):
    items = fields.List(fields.Nested(TrustedCa))


class RevocationListView(Schema):
    issuer = fields.String(metadata={"description": "the issuing CA's distinguished name (RFC 4514)"})
    issuer_id = fields.String(metadata={"description": "SHA-256 of the issuer name's DER"})
    crl_number = fields.String(allow_none=True, metadata={"description": "decimal text; null when absent"})
    this_update = fields.String()
    next_update = fields.String(allow_none=True)
    revoked_count = fields.Integer()
    past_next_update = fields.Boolean(metadata={"description": "stale: the CA should have issued a newer one"})
    source = fields.String(metadata={"description": "imported (by an operator) or file (CRL_DIR)"})
    imported_at = fields.String(allow_none=True)
    status = fields.String(metadata={"description": "on importing: imported, or unchanged (the same CRL again)"})


class RevocationLists(Schema):
    items = fields.List(fields.Nested(RevocationListView))


_CA_ANSWERS = {200: ("Trusted already (nothing written)", TrustedCa),
               422: "Not a readable certificate, or not a CA's (certificate_invalid, not_a_ca)"}
_CRL_ANSWERS = {200: ("The same CRL again (nothing written)", RevocationListView),
                409: "A CRL as recent or newer is held (crl_not_newer)",
                422: "Unreadable (crl_invalid), or signed by no trusted CA (crl_untrusted)"}


class IdentityRoutes:
    """Mixin of the gateway service; endpoints are declared with gateway.http.api."""

    @api("POST", "/api/v1/auth/register/mobile", summary="Register a citizen by mobile subscription "
         "(CCCD checked, carrier must name this CCCD); sends a one-time code", tags=TAGS,
         body=RegisterMobileBody, response=CodeSent, status=202, rate_limit="register", responses=_REG)
    def register_mobile(self, call: ApiCall):
        return self.identity_rpc.register_mobile(raw_body(call), context=call.context())

    @api("POST", "/api/v1/auth/register/mobile/confirm", summary="Confirm a registration with its one-time code",
         tags=TAGS, body=ConfirmRegistrationBody, response=Registered, status=201, rate_limit="otp",
         responses=_OTP)
    def confirm_mobile(self, call: ApiCall):
        return self.identity_rpc.confirm_registration(raw_body(call), context=call.context())

    @api("POST", "/api/v1/auth/register/confirm", summary="Confirm any registration (mobile or BHXH) "
         "with its one-time code", tags=TAGS, body=ConfirmRegistrationBody, response=Registered, status=201,
         rate_limit="otp", responses=_OTP)
    def confirm_registration(self, call: ApiCall):
        return self.identity_rpc.confirm_registration(raw_body(call), context=call.context())

    @api("POST", "/api/v1/auth/register/bhxh", summary="Register a citizen by social-insurance (BHXH) code; "
         "sends a one-time code to the phone", tags=TAGS, body=RegisterBhxhBody, response=CodeSent, status=202,
         rate_limit="register", responses=_REG)
    def register_bhxh(self, call: ApiCall):
        return self.identity_rpc.register_bhxh(raw_body(call), context=call.context())

    @api("POST", "/api/v1/auth/register/bhxh/confirm", summary="Confirm a BHXH registration with its code",
         tags=TAGS, body=ConfirmRegistrationBody, response=Registered, status=201, rate_limit="otp",
         responses=_OTP)
    def confirm_bhxh(self, call: ApiCall):
        return self.identity_rpc.confirm_registration(raw_body(call), context=call.context())

    @api("POST", "/api/v1/auth/otp/resend", summary="Send a new one-time code for a pending registration "
         "({registration_id}) or sign-in ({login_id})", tags=TAGS, body=ResendBody, response=CodeSent,
         rate_limit="otp", responses={404: "Unknown id", 400: "Already finished", 429: "Too many codes"})
    def resend_code(self, call: ApiCall):
        return self.identity_rpc.resend_code(raw_body(call), context=call.context())

    @api("POST", "/api/v1/auth/challenge", summary="A fresh challenge for a digital-signature SIM or USB token "
         "to sign", tags=TAGS, body=ChallengeBody, response=Challenge, status=201, rate_limit="signin")
    def challenge(self, call: ApiCall):
        return self.identity_rpc.new_challenge(raw_body(call), context=call.context())

    @api("POST", "/api/v1/auth/register/certificate", summary="Register a citizen or business with an X.509 "
         "certificate (SIM / USB token) and a signature over a challenge", tags=TAGS, body=RegisterCertificateBody,
         response=Tokens, status=201, rate_limit="register",
         responses={401: "Certificate or signature refused", 409: "Already registered", 422: "Invalid input"})
    def register_certificate(self, call: ApiCall):
        return self.identity_rpc.register_certificate(raw_body(call), context=call.context())

    @api("POST", "/api/v1/auth/login", summary="Sign in: password (then a one-time code) or certificate "
         "(tokens at once)", tags=TAGS, body=LoginBody, rate_limit="signin",
         responses={200: "Code sent (password) or tokens (certificate)", 401: "Not signed in (no detail)",
                    429: "Locked; see Retry-After"})
    def login(self, call: ApiCall):
        return self.identity_rpc.login(raw_body(call), context=call.context())

    @api("POST", "/api/v1/auth/login/confirm", summary="Finish a password sign-in with its one-time code",
         tags=TAGS, body=LoginConfirmBody, response=Tokens, rate_limit="otp", responses=_OTP)
    def confirm_login(self, call: ApiCall):
        return self.identity_rpc.confirm_login(raw_body(call), context=call.context())

    @api("POST", "/api/v1/auth/refresh", summary="New tokens for a refresh token (which is then replaced)",
         tags=TAGS, body=RefreshBody, response=Tokens, rate_limit="signin",
         responses={401: "Refresh token invalid, expired or revoked"})
    def refresh(self, call: ApiCall):
        return self.identity_rpc.refresh(raw_body(call), context=call.context())

    @api("POST", "/api/v1/auth/logout", summary="Sign out: revoke this session (or every session)", tags=TAGS,
         body=LogoutBody, auth=ROLES, status=204)
    def logout(self, call: ApiCall):
        session = call.principal.claims.get("sid")
        extra = {"session_id": session} if isinstance(session, str) else {}
        self.identity_rpc.logout(call.principal.account_id, raw_body(call), context=call.context(), **extra)
        return 204, None

    @api("GET", "/api/v1/me", summary="The signed-in account", tags=TAGS, auth=ROLES, response=Account,
         responses={401: "Not signed in"})
    def me(self, call: ApiCall):
        return self.identity_rpc.me(call.principal.account_id)

    @api("GET", "/api/v1/me/notifications", summary="My notification choice: SMS about my dossiers' steps",
         tags=TAGS, auth=APPLICANT_ROLES, response=NotificationPreferences, responses={401: "Not signed in"})
    def notification_preferences(self, call: ApiCall):
        return self.identity_rpc.notification_preferences(call.principal.account_id)

    @api("PUT", "/api/v1/me/notifications", summary="Turn SMS about my dossiers' steps on or off", tags=TAGS,
         body=NotificationPreferencesBody, auth=APPLICANT_ROLES, response=NotificationPreferences,
         responses={401: "Not signed in", 422: "Invalid input"})
    def set_notification_preferences(self, call: ApiCall):
        return self.identity_rpc.set_notification_preferences(call.principal.account_id, raw_body(call),
                                                              context=call.context())

    @api("GET", "/.well-known/jwks.json", summary="The token-signing key set (current and previous keys)",
         tags=TAGS)
    def jwks(self, call: ApiCall):
        return Response(json.dumps(self.identity_rpc.jwks()), mimetype="application/json",
                        headers={"Cache-Control": "public, max-age=300"})

    @api("POST", "/api/v1/auth/password/forgot", summary="Forgotten password: a code to the account's phone "
         "(the answer is the same whether or not the account exists)", tags=TAGS, body=ForgotPasswordBody,
         status=202, rate_limit="otp")
    def forgot_password(self, call: ApiCall):
        return self.identity_rpc.forgot_password(raw_body(call), context=call.context())

    @api("POST", "/api/v1/auth/password/reset", summary="Set a new password with the code; every session ends",
         tags=TAGS, body=ResetPasswordBody, rate_limit="otp",
         responses={400: "Wrong, expired or used code", 422: "Password refused by the policy"})
    def reset_password(self, call: ApiCall):
        return self.identity_rpc.reset_password(raw_body(call), context=call.context())

    @api("POST", "/api/v1/me/password", summary="Change my password (the current one is needed); every "
         "session ends", tags=TAGS, body=ChangePasswordBody, auth=ROLES, rate_limit="signin",
         responses={401: "Current password wrong", 422: "Password refused by the policy"})
    def change_password(self, call: ApiCall):
        return self.identity_rpc.change_password(call.principal.account_id, raw_body(call), context=call.context())

    # -- staff and agency systems ----------------------------------------------------------

    @api("POST", "/api/v1/staff", summary="Create a staff account (officer of an agency, editor, operator); "
         "the person activates it with a code sent to their phone", tags=STAFF_TAGS, body=NewStaffBody,
         auth=OPERATOR, status=201, responses={409: "Username taken", 422: "Invalid input"})
    def create_staff(self, call: ApiCall):
        return self.identity_rpc.create_staff(raw_body(call), context=call.context())

    @api("GET", "/api/v1/staff", summary="Staff accounts, newest first, by agency, status and role",
         tags=STAFF_TAGS, query=StaffListQuery, response=StaffList, auth=OPERATOR,
         responses={422: "Invalid input"})
    def list_staff(self, call: ApiCall):
        return self.identity_rpc.list_staff(call.query)

    @api("POST", "/api/v1/staff/<account_id>/disable", summary="Disable a staff account at once: it cannot "
         "sign in, its sessions end and its access tokens are refused", tags=STAFF_TAGS, body=StaffStatusBody,
         response=StaffStatus, auth=OPERATOR, responses=_STAFF_STATUS_ERRORS)
    def disable_staff(self, call: ApiCall, account_id: str):
        return self.identity_rpc.disable_staff(account_id, raw_body(call), context=call.context())

    @api("POST", "/api/v1/staff/<account_id>/reinstate", summary="Reinstate a disabled staff account (it signs "
         "in again; tokens from before the disable stay refused)", tags=STAFF_TAGS, body=StaffStatusBody,
         response=StaffStatus, auth=OPERATOR, responses=_STAFF_STATUS_ERRORS)
    def reinstate_staff(self, call: ApiCall, account_id: str):
        return self.identity_rpc.reinstate_staff(account_id, raw_body(call), context=call.context())

    @api("POST", "/api/v1/auth/staff/activate", summary="Activate a staff account: the code from the SMS "
         "and a new password", tags=STAFF_TAGS, body=ActivateStaffBody, response=Registered, rate_limit="otp",
         responses=_OTP)
    def activate_staff(self, call: ApiCall):
        return self.identity_rpc.activate_staff(raw_body(call), context=call.context())

    @api("POST", "/api/v1/auth/staff/login", summary="Staff sign-in: username + password, then a one-time "
         "code (finish with /api/v1/auth/login/confirm)", tags=STAFF_TAGS, body=StaffLoginBody,
         response=CodeSent, rate_limit="signin", responses={401: "Not signed in (no detail)", 429: "Locked"})
    def staff_login(self, call: ApiCall):
        return self.identity_rpc.staff_login(raw_body(call), context=call.context())

    @api("POST", "/api/v1/agency-systems", summary="Issue client credentials to an agency's back-office "
         "system (the secret is shown once)", tags=STAFF_TAGS, body=NewAgencySystemBody, auth=OPERATOR,
         status=201, responses={422: "Invalid input"})
    def register_agency_system(self, call: ApiCall):
        return 201, self.identity_rpc.register_agency_system(raw_body(call), context=call.context()), {
            "Cache-Control": "no-store"}

    @api("DELETE", "/api/v1/agency-systems/<client_id>", summary="Revoke an agency system's credentials",
         tags=STAFF_TAGS, auth=OPERATOR, responses={404: "Unknown or already revoked"})
    def revoke_agency_system(self, call: ApiCall, client_id: str):
        return self.identity_rpc.revoke_agency_system(client_id, context=call.context())

    @api("POST", "/api/v1/auth/token", summary="Agency system sign-in with client credentials "
         "(grant_type=client_credentials): a short-lived token scoped to its agency", tags=STAFF_TAGS,
         body=ClientCredentialsBody, rate_limit="signin", responses={401: "Invalid client", 429: "Locked"})
    def client_token(self, call: ApiCall):
        return 200, self.identity_rpc.client_token(raw_body(call), context=call.context()), \
            {"Cache-Control": "no-store"}

    # -- signing-certificate trust ---------------------------------------------------------

    @api("GET", "/api/v1/pki/trusted-cas", summary="The certificate authorities trusted for SIM / USB token "
         "certificates (TRUSTED_CA_FILE and those operators added)", tags=PKI_TAGS, response=TrustedCaList,
         auth=OPERATOR)
    def list_trusted_cas(self, call: ApiCall):
        return self.identity_rpc.list_trusted_cas()

    @api("POST", "/api/v1/pki/trusted-cas", summary="Trust a certificate authority: certificates it issued can "
         "register and sign in", tags=PKI_TAGS, body=TrustedCaBody, response=TrustedCa, status=201,
         auth=OPERATOR, responses=_CA_ANSWERS)
    def add_trusted_ca(self, call: ApiCall):
        out = self.identity_rpc.add_trusted_ca(call.body["certificate_pem"], context=call.context())
        return (201 if out.get("status") == "added" else 200), out

    @api("GET", "/api/v1/pki/crls", summary="The certificate revocation lists held, one per issuing CA key",
         tags=PKI_TAGS, response=RevocationLists, auth=OPERATOR)
    def list_crls(self, call: ApiCall):
        return self.identity_rpc.list_crls()

    @api("POST", "/api/v1/pki/crls", summary="Import a CA's certificate revocation list (CRL): the "
         "certificates it revokes can no longer register or sign in", tags=PKI_TAGS, body=CrlBody,
         response=RevocationListView, status=201, auth=OPERATOR, responses=_CRL_ANSWERS)
    def add_crl(self, call: ApiCall):
        out = self.identity_rpc.add_crl(call.body["crl"], call.body.get("issuer_pem"), context=call.context())
        return (201 if out.get("status") == "imported" else 200), out
