"""A small gateway made of ``@api`` routes only, run as its own ``nameko run`` process by
test_rules.py: it exercises the rules every endpoint gets (problems, validation, auth, limits,
request ids, CORS, headers) with budgets small enough to hit, without touching the system's.

Tokens are verified exactly as in the gateway, against a key set read from the file named by
``RULES_JWKS_FILE`` instead of the identity service.
"""

from __future__ import annotations

import json
import os

from marshmallow import Schema, fields, validate

from gateway.http.route import ApiCall, api
from gateway.http.tokens import TokenKeys
from portal_common.errors import Conflict, InvalidInput


def _jwks_from_file(config: dict) -> dict:
    with open(os.environ["RULES_JWKS_FILE"], encoding="utf-8") as fh:
        return json.load(fh)


TokenKeys._fetch_jwks = staticmethod(_jwks_from_file)
TokenKeys._fetch_revocations = staticmethod(lambda config: {})


class LoginIn(Schema):
    cccd = fields.String(required=True, validate=validate.Regexp(r"^\d{12}$"))
    password = fields.String(required=True, validate=validate.Length(min=8, max=128))


class ItemIn(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    count = fields.Integer(required=True, validate=validate.Range(min=1, max=1000))
    tags = fields.List(fields.String(validate=validate.Length(max=20)), load_default=list)


class ItemOut(Schema):
    name = fields.String(required=True)
    count = fields.Integer(required=True)


class SearchQuery(Schema):
    q = fields.String(load_default=None, validate=validate.Length(max=200))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10_000))


class RulesService:
    name = "gateway"

    @api("POST", "/t/login", summary="sign-in shaped endpoint", body=LoginIn, rate_limit="signin")
    def login(self, call: ApiCall):
        return {"ok": True}

    @api("POST", "/t/items", summary="validated body", body=ItemIn, response=ItemOut, status=201)
    def create(self, call: ApiCall):
        return call.body

    @api("GET", "/t/search", summary="validated query", query=SearchQuery, rate_limit="lookup")
    def search(self, call: ApiCall):
        return {"q": call.query["q"], "page": call.query["page"]}

    @api("GET", "/t/mine", summary="citizens only", auth=("citizen",))
    def mine(self, call: ApiCall):
        return {"account": call.principal.account_id, "request_id": call.request_id}

    @api("GET", "/t/boom", summary="an unexpected failure")
    def boom(self, call: ApiCall):
        raise RuntimeError("password=hunter2 at /srv/secret/path")

    @api("GET", "/t/conflict", summary="a typed refusal from a service")
    def conflict(self, call: ApiCall):
        raise Conflict("dossier_not_pending", "The dossier is no longer pending.")

    @api("GET", "/t/invalid", summary="a service's field errors")
    def invalid(self, call: ApiCall):
        raise InvalidInput("invalid_input", "bad", {"agency_code": ["Unknown."], "form": {"x": ["Bad."]}})
