"""Endpoints of the dossier part of API.md (signed in as the applicant).

The gateway checks the shape of what it can (query, JSON body, multipart); the dossier
service checks the content against the procedure and owns every decision. Another
applicant's dossier answers 404 exactly like an unknown code.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

from marshmallow import Schema, fields, validate
from werkzeug.wrappers import Response

from gateway.http.route import ApiCall, api
from portal_common.contracts.dossier import (
    AccessLogQuerySchema,
    DraftListSchema,
    DraftSchema,
    FilingSchema,
    OwnerListSchema,
    SupplementSchema,
    WithdrawSchema,
)
from portal_common.errors import InvalidInput

APPLICANTS = ("citizen", "business")


class ViewQuery(Schema):
    as_of = fields.AwareDateTime(metadata={"description": "audit: the dossier as it was at this time"})


class AccessAgency(Schema):
    code = fields.String(allow_none=True)
    name = fields.String(allow_none=True, metadata={"description": "as the dossier's events name it"})


class AccessedDocument(Schema):
    id = fields.String(required=True)
    name = fields.String(allow_none=True)


class AccessEntry(Schema):
    at = fields.String(required=True, metadata={"description": "when the dossier was read"})
    agency = fields.Nested(AccessAgency, required=True)
    role = fields.String(required=True, metadata={"description": "officer or agency_system"})
    staff_ref = fields.String(required=True, metadata={
        "description": "opaque reference to the staff account (quote it in a complaint)"})
    access = fields.String(required=True, validate=validate.OneOf(("view", "document")),
                           metadata={"description": "view: the full dossier; document: one document"})
    document = fields.Nested(AccessedDocument, allow_none=True)
    as_of = fields.String(allow_none=True, metadata={"description": "the past state asked for, if any"})


class AccessLogPage(Schema):
    items = fields.List(fields.Nested(AccessEntry), required=True)
    total = fields.Integer(required=True)
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)


#: one instance per body schema, to turn a checked body back into the RPC's JSON (an instance
#: builds its nested schemas once, on first use; a new one per call cost about 0.25 ms)
_DUMPERS = {schema: schema() for schema in (FilingSchema, SupplementSchema, WithdrawSchema, DraftSchema)}


class DossierRoutes:
    """Mixin of the gateway service; endpoints are declared with gateway.http.api."""

    @api("POST", "/api/v1/dossiers", summary="Submit a dossier", tags=("dossiers",), body=FilingSchema,
         auth=APPLICANTS, status=201, responses={409: "Idempotency-Key reused", 422: "Filing incomplete"},
         description="Send an `Idempotency-Key` header: a retry with the same key returns the same dossier.")
    def submit_dossier(self, call: ApiCall):
        key = call.request.headers.get("Idempotency-Key")
        view = self.dossier_rpc.submit(call.context(), _DUMPERS[FilingSchema].dump(call.body), key)
        created = view.pop("created", True)
        return (201 if created else 200), view, {"Location": f"/api/v1/dossiers/{view['code']}"}

    @api("GET", "/api/v1/dossiers", summary="My dossiers, newest first (filters: status, procedure, dates)",
         tags=("dossiers",), query=OwnerListSchema, auth=APPLICANTS)
    def list_my_dossiers(self, call: ApiCall):
        q = call.query
        filters = {k: (q[k].isoformat() if k.startswith("submitted") else q[k])
                   for k in ("procedure_code", "submitted_from", "submitted_to") if q.get(k) is not None}
        return self.dossier_rpc.list_mine(call.context(), q.get("status"), q["page"], q["page_size"], **filters)

    @api("GET", "/api/v1/dossiers/<code>", summary="One of my dossiers: status, timeline, inputs, outputs",
         tags=("dossiers",), query=ViewQuery, auth=APPLICANTS)
    def get_my_dossier(self, call: ApiCall, code: str):
        as_of = call.query.get("as_of")
        return self.dossier_rpc.get(call.context(), code, as_of.isoformat() if as_of else None)

    @api("POST", "/api/v1/dossiers/<code>/documents", summary="Upload a document (multipart, field `file`)",
         tags=("dossiers",), auth=APPLICANTS, raw_body=True, status=201)
    def upload_document(self, call: ApiCall, code: str):
        upload = call.request.files.get("file")
        if upload is None:
            raise InvalidInput("validation_failed", "Send the document as multipart field 'file'.",
                               [{"field": "file", "message": "required"}])
        content = upload.read()
        requirement = call.request.form.get("requirement") or None
        return self.dossier_rpc.upload_document(call.context(), code, upload.filename or "", upload.mimetype or "",
                                                base64.b64encode(content).decode(), requirement)

    @api("POST", "/api/v1/dossiers/<code>/supplement", summary="Answer a supplement request", tags=("dossiers",),
         body=SupplementSchema, auth=APPLICANTS)
    def supplement_dossier(self, call: ApiCall, code: str):
        return self.dossier_rpc.supplement(call.context(), code, _DUMPERS[SupplementSchema].dump(call.body))

    @api("POST", "/api/v1/dossiers/<code>/withdraw", summary="Withdraw a dossier (before a result)",
         tags=("dossiers",), body=WithdrawSchema, auth=APPLICANTS)
    def withdraw_dossier(self, call: ApiCall, code: str):
        return self.dossier_rpc.withdraw(call.context(), code, _DUMPERS[WithdrawSchema].dump(call.body))

    @api("GET", "/api/v1/dossiers/<code>/documents/<document_id>", summary="Download an input or output document",
         tags=("dossiers",), auth=APPLICANTS)
    def download_document(self, call: ApiCall, code: str, document_id: str):
        return document_response(self.dossier_rpc.get_document(call.context(), code, document_id))

    @api("GET", "/api/v1/dossiers/<code>/access-log", summary="Who at the agencies read my dossier, newest first",
         tags=("dossiers",), query=AccessLogQuerySchema, response=AccessLogPage, auth=APPLICANTS,
         description="Every read of the full dossier or download of a document by agency staff; "
                     "the staff member is shown as an opaque reference, not by name.")
    def my_dossier_access_log(self, call: ApiCall, code: str):
        q = call.query
        return self.dossier_rpc.owner_access_log(call.context(), code, q["page"], q["page_size"])

    # -- drafts: saved before filing (no code yet) ---------------------------------------

    @api("POST", "/api/v1/dossiers/drafts", summary="Save a new draft", tags=("drafts",), body=DraftSchema,
         auth=APPLICANTS, status=201)
    def create_draft(self, call: ApiCall):
        view = self.dossier_rpc.save_draft(call.context(), _DUMPERS[DraftSchema].dump(call.body))
        return 201, view, {"Location": f"/api/v1/dossiers/drafts/{view['id']}"}

    @api("GET", "/api/v1/dossiers/drafts", summary="My drafts, last saved first", tags=("drafts",),
         query=DraftListSchema, auth=APPLICANTS)
    def list_my_drafts(self, call: ApiCall):
        q = call.query
        return self.dossier_rpc.list_drafts(call.context(), q["status"], q["page"], q["page_size"])

    @api("GET", "/api/v1/dossiers/drafts/<draft_id>", summary="One of my drafts", tags=("drafts",),
         auth=APPLICANTS)
    def get_my_draft(self, call: ApiCall, draft_id: str):
        return self.dossier_rpc.get_draft(call.context(), draft_id)

    @api("PUT", "/api/v1/dossiers/drafts/<draft_id>", summary="Save a draft again (its whole content)",
         tags=("drafts",), body=DraftSchema, auth=APPLICANTS, responses={409: "Saved elsewhere meanwhile, or closed"})
    def save_my_draft(self, call: ApiCall, draft_id: str):
        return self.dossier_rpc.save_draft(call.context(), _DUMPERS[DraftSchema].dump(call.body), draft_id)

    @api("DELETE", "/api/v1/dossiers/drafts/<draft_id>", summary="Discard a draft", tags=("drafts",),
         auth=APPLICANTS)
    def discard_my_draft(self, call: ApiCall, draft_id: str):
        return self.dossier_rpc.discard_draft(call.context(), draft_id)

    @api("POST", "/api/v1/dossiers/drafts/<draft_id>/submit", summary="File a draft as a dossier",
         tags=("drafts",), auth=APPLICANTS, status=201, responses={422: "Filing incomplete"},
         description="A draft becomes one dossier: submitting it again answers 200 with that dossier.")
    def submit_my_draft(self, call: ApiCall, draft_id: str):
        view = self.dossier_rpc.submit_draft(call.context(), draft_id)
        created = view.pop("created", True)
        return (201 if created else 200), view, {"Location": f"/api/v1/dossiers/{view['code']}"}

    @api("GET", "/api/v1/dossiers/drafts/<draft_id>/documents/<document_id>", summary="Download a draft's document",
         tags=("drafts",), auth=APPLICANTS)
    def download_draft_document(self, call: ApiCall, draft_id: str, document_id: str):
        return document_response(self.dossier_rpc.get_draft_document(call.context(), draft_id, document_id))


def document_response(result: dict) -> Response:
    """The stored bytes, served as a download that a browser will not sniff into HTML."""
    doc = result["document"]
    name = (doc.get("name") or "document").replace('"', "")
    return Response(base64.b64decode(result["content_base64"]), mimetype=doc["content_type"], headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
        "X-Content-Type-Options": "nosniff", "X-Content-SHA256": doc["sha256"]})
