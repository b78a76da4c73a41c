"""Endpoints of sign-in with VNeID (OpenID Connect): ``start`` and ``complete`` (API.md), and
``link`` and ``backchannel-logout`` (described in ``/openapi.json`` and docs/vneid.md).

Identity runs the protocol and owns every decision; the gateway validates the bodies with the
shared schemas (codes, states, tokens and passwords are ``load_only``: never echoed).
"""

from __future__ import annotations

from marshmallow import Schema, fields

from gateway.http.route import ApiCall, api, raw_body
from gateway.routes import dev
from gateway.routes.identity import Tokens
from portal_common.contracts.vneid import (
    VneidCompleteBody,
    VneidIdentityBody,
    VneidLinkBody,
    VneidStartBody,
)
from portal_common.errors import InvalidInput

TAGS = ("identity: VNeID",)


class Started(Schema):
    authorization_url = fields.String(metadata={"description": "send the browser here"})
    state = fields.String(metadata={"description": "comes back with the code; single use, expires"})
    expires_in = fields.Integer(metadata={"description": "seconds the sign-in stays open"})


class VneidTokens(Tokens):
    assurance_level = fields.Integer(metadata={"description": "1 or 2 (Decree 69/2024); also the token's acr"})


class LinkAnswer(VneidTokens):
    status = fields.String(metadata={"description": "otp_sent when a code went to the account's phone"})
    otp_sent_to = fields.String()


class LoggedOut(Schema):
    sessions_ended = fields.Integer()


class TestIdentity(Schema):
    cccd = fields.String()
    full_name = fields.String()
    date_of_birth = fields.String()
    gender = fields.String()
    phone = fields.String()
    level = fields.Integer()
    tax_code = fields.String()


class VneidRoutes:
    """Mixin of the gateway service; endpoints are declared with gateway.http.api."""

    @api("POST", "/api/v1/auth/vneid/start", summary="Start a sign-in with VNeID: the provider's authorization "
         "URL (PKCE, state, nonce) for a registered redirect_uri", tags=TAGS, body=VneidStartBody,
         response=Started, rate_limit="signin",
         responses={404: "VNeID not configured", 422: "redirect_uri not registered (redirect_uri_not_registered)",
                    503: "Provider unreachable"})
    def vneid_start(self, call: ApiCall):
        return self.identity_rpc.vneid_start(raw_body(call), context=call.context())

    @api("POST", "/api/v1/auth/vneid/complete", summary="Finish a sign-in with VNeID with the code and state "
         "the provider sent back; the first sign-in creates the account", tags=TAGS, body=VneidCompleteBody,
         response=VneidTokens, rate_limit="signin",
         responses={401: "State unknown, used or expired (vneid_state_invalid); code refused (vneid_code_invalid); "
                         "ID token refused (vneid_token_invalid)",
                    409: "An account has this CCCD: prove it is yours (vneid_link_required, with link_token)",
                    503: "Provider unreachable"})
    def vneid_complete(self, call: ApiCall):
        return 200, self.identity_rpc.vneid_complete(raw_body(call), context=call.context()), {
            "Cache-Control": "no-store"}

    @api("POST", "/api/v1/auth/vneid/link", summary="Link an existing account to VNeID by proving it is yours: "
         "a one-time code to its registered phone (method=otp, first without then with the code) or its "
         "password; then signed in", tags=TAGS, body=VneidLinkBody, response=LinkAnswer, rate_limit="otp",
         responses={401: "Wrong proof, or link token unknown, used or expired", 429: "Locked"})
    def vneid_link(self, call: ApiCall):
        out = self.identity_rpc.vneid_link(raw_body(call), context=call.context())
        return (202 if out.get("status") == "otp_sent" else 200), out, {"Cache-Control": "no-store"}

    @api("POST", "/api/v1/auth/vneid/backchannel-logout", summary="OpenID Connect back-channel logout: the "
         "provider's signed logout token (form field logout_token) ends every session of the account",
         tags=TAGS, raw_body=True, content_type="application/x-www-form-urlencoded", response=LoggedOut,
         responses={401: "Logout token refused (signature, iss, aud, replay)", 422: "No logout_token"})
    def vneid_backchannel_logout(self, call: ApiCall):
        token = call.request.form.get("logout_token")
        if not token:
            raise InvalidInput("validation_failed", "Send the logout_token form field.",
                               [{"field": "logout_token", "message": "required"}])
        out = self.identity_rpc.vneid_backchannel_logout({"logout_token": token}, context=call.context())
        return 200, out, {"Cache-Control": "no-store"}

    if dev.ENABLED:

        @api("POST", "/api/v1/dev/vneid-identities", summary="Add a test identity to the local VNeID stand-in",
             tags=dev.TAGS, body=VneidIdentityBody, response=TestIdentity, status=201)
        def dev_vneid_identity(self, call: ApiCall):
            return self.identity_rpc.dev_vneid_identity(raw_body(call))
