"""Sign-in with VNeID (OpenID Connect): the request bodies the gateway and identity share, and
the events identity publishes (exchange ``identity.events``, stream ``account-<id>``).

No code, state, nonce, token or password ever appears in an event or a response echo: those
fields are ``load_only`` and the event schemas have no field that could hold one.
"""

from __future__ import annotations

from marshmallow import fields, validate

from portal_common.contracts import CATALOGUE
from portal_common.contracts.identity import (
    _ID_TEXT,
    _OTP,
    _PERSON_NAME,
    PRODUCER,
    _no_control,
    _past_date,
    _Strict,
)

ASSURANCE_LEVELS = (1, 2)
LINK_PROOFS = ("otp", "password")
_LEVEL = validate.OneOf(ASSURANCE_LEVELS)
_OPAQUE = [validate.Length(min=1, max=2048), _no_control]


class VneidStartBody(_Strict):
    redirect_uri = fields.String(required=True, validate=[validate.Length(min=1, max=500), _no_control],
                                 metadata={"description": "one of the registered redirect URIs (VNEID_REDIRECT_URIS)"})
    login_hint = fields.String(load_default=None, allow_none=True, validate=_ID_TEXT,
                               metadata={"description": "optional: the CCCD to suggest to the provider"})


class VneidCompleteBody(_Strict):
    code = fields.String(required=True, validate=_OPAQUE, load_only=True,
                         metadata={"description": "the ``code`` the provider sent back to the redirect URI"})
    state = fields.String(required=True, validate=[validate.Length(min=1, max=200), _no_control], load_only=True,
                          metadata={"description": "the ``state`` of /start, sent back with the code"})


class VneidLinkBody(_Strict):
    link_token = fields.String(required=True, validate=[validate.Length(min=1, max=200), _no_control],
                               load_only=True, metadata={"description": "from the 409 vneid_link_required problem"})
    method = fields.String(required=True, validate=validate.OneOf(LINK_PROOFS),
                           metadata={"description": "otp: a code to the account's registered phone (send without "
                                                    "``otp`` first, then again with it); password: the account's "
                                                    "password"})
    otp = fields.String(load_default=None, allow_none=True, validate=_OTP, load_only=True)
    password = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=256),
                             load_only=True)


class VneidIdentityBody(_Strict):
    """A test identity of the local stand-in (``POST /api/v1/dev/vneid-identities``)."""

    cccd = fields.String(required=True, validate=validate.Regexp(r"^\d{12}$"))
    full_name = fields.String(required=True, validate=_PERSON_NAME)
    date_of_birth = fields.Date(required=True, validate=_past_date)
    gender = fields.String(required=True, validate=validate.OneOf(["male", "female"]))
    phone = fields.String(required=True, validate=_ID_TEXT)
    level = fields.Integer(required=True, validate=_LEVEL)
    tax_code = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(r"^\d{10}(\d{3})?$"),
                             metadata={"description": "an organisation's identification account: its tax code"})
    organization_name = fields.String(load_default=None, allow_none=True,
                                      validate=[validate.Length(min=1, max=200), _no_control])


class VneidLogoutBody(_Strict):
    logout_token = fields.String(required=True, validate=validate.Length(min=1, max=8192), load_only=True)


# -- events -------------------------------------------------------------------------------------

@CATALOGUE.register("VneidAccountCreated", 1, PRODUCER,
                    "A first sign-in with VNeID created an account from the provider's verified claims.")
class VneidAccountCreatedV1(_Strict):
    account_id = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(["citizen", "business"]))
    cccd = fields.String(required=True, validate=validate.Regexp(r"^\d{12}$"),
                         metadata={"description": "the person's CCCD (a business: its legal representative's)"})
    full_name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    date_of_birth = fields.Date(allow_none=True, load_default=None)
    gender = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(["male", "female"]))
    phone = fields.String(allow_none=True, load_default=None)
    tax_code = fields.String(allow_none=True, load_default=None)
    assurance_level = fields.Integer(required=True, validate=_LEVEL)


@CATALOGUE.register("VneidSignedIn", 1, PRODUCER,
                    "An account signed in with VNeID and received tokens; its assurance level is now this one.")
class VneidSignedInV1(_Strict):
    account_id = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(["citizen", "business"]))
    assurance_level = fields.Integer(required=True, validate=_LEVEL)
    client_ip = fields.String(allow_none=True, load_default=None)


@CATALOGUE.register("VneidLinked", 1, PRODUCER,
                    "An existing account was linked to a VNeID identity after its holder proved the account was "
                    "theirs (a one-time code to its phone, or its password).")
class VneidLinkedV1(_Strict):
    account_id = fields.String(required=True)
    proof = fields.String(required=True, validate=validate.OneOf(LINK_PROOFS))
    assurance_level = fields.Integer(required=True, validate=_LEVEL)


@CATALOGUE.register("VneidLogoutReceived", 1, PRODUCER,
                    "VNeID signed the account out (OpenID Connect back-channel logout): its sessions ended "
                    "(announced by ``SignedOut`` with ``all_sessions``).")
class VneidLogoutReceivedV1(_Strict):
    account_id = fields.String(required=True)
    sessions_ended = fields.Integer(required=True, validate=validate.Range(min=0))
