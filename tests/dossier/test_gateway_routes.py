"""Unit tests of the gateway's dossier, lookup and agency handlers (one worker, RPC mocked).

They check what the handlers add between HTTP and the dossier service: the Idempotency-Key
header, 201 versus 200 on a retried submit, multipart uploads, document downloads, the
caller's context and the audit ``as_of``. Routing, auth and validation are covered by the
HTTP tests against the running system.
"""

from __future__ import annotations

import base64
import datetime as dt
import io

import pytest
from nameko.testing.services import worker_factory
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from gateway.http.auth import Principal
from gateway.http.route import ApiCall
from gateway.service import GatewayService
from portal_common.errors import InvalidInput

CITIZEN = Principal(account_id="acc-1", role="citizen", subject="001090000001")
OFFICER = Principal(account_id="o-1", role="officer", subject="", agency_code="W.00001")


def make_call(principal=CITIZEN, body=None, query=None, **builder) -> ApiCall:
    request = Request(EnvironBuilder(**builder).get_environ())
    return ApiCall(request, "rid-1", principal, query or {}, body)


def test_submit_passes_the_idempotency_key_and_answers_201_then_200():
    gateway = worker_factory(GatewayService)
    gateway.dossier_rpc.submit.return_value = {"code": "W.00001-260302-0001", "status": "submitted", "created": True}
    status, body, headers = gateway.submit_dossier(make_call(body={"procedure_code": "P"}, method="POST",
                                                             headers={"Idempotency-Key": "k-42"}))
    context, filing, key = gateway.dossier_rpc.submit.call_args.args
    assert (status, key, filing) == (201, "k-42", {"procedure_code": "P"})
    assert context["actor"] == {"kind": "citizen", "id": "acc-1", "agency_code": None, "subject": "001090000001"}
    assert headers["Location"] == "/api/v1/dossiers/W.00001-260302-0001" and "created" not in body
    gateway.dossier_rpc.submit.return_value = {"code": "W.00001-260302-0001", "status": "submitted", "created": False}
    status, _, _ = gateway.submit_dossier(make_call(body={}, method="POST", headers={"Idempotency-Key": "k-42"}))
    assert status == 200


def test_upload_sends_the_file_as_base64():
    gateway = worker_factory(GatewayService)
    gateway.dossier_rpc.upload_document.return_value = {"id": "d-1"}
    call = make_call(method="POST", data={"file": (io.BytesIO(b"%PDF-1.4 x"), "scan.pdf", "application/pdf"),
                                          "requirement": "form"})
    assert gateway.upload_document(call, code="C-260302-0001") == {"id": "d-1"}
    _, code, name, content_type, content, requirement = gateway.dossier_rpc.upload_document.call_args.args
    assert (code, name, content_type, requirement) == ("C-260302-0001", "scan.pdf", "application/pdf", "form")
    assert base64.b64decode(content) == b"%PDF-1.4 x"


def test_upload_without_a_file_is_a_validation_error():
    gateway = worker_factory(GatewayService)
    with pytest.raises(InvalidInput) as refused:  # the route entrypoint turns it into a 422 problem
        gateway.upload_document(make_call(method="POST", data={"other": "x"}), code="C-260302-0001")
    assert refused.value.code == "validation_failed"
    gateway.dossier_rpc.upload_document.assert_not_called()


def test_download_is_an_attachment_that_is_not_sniffed():
    gateway = worker_factory(GatewayService)
    gateway.dossier_rpc.get_document.return_value = {
        "document": {"name": 'kết quả".pdf', "content_type": "application/pdf", "sha256": "ab" * 32},
        "content_base64": base64.b64encode(b"%PDF-1.7 result").decode()}
    response = gateway.download_document(make_call(), code="C-260302-0001", document_id="d-1")
    assert response.get_data() == b"%PDF-1.7 result" and response.mimetype == "application/pdf"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Disposition"].startswith("attachment; filename*=UTF-8''k%E1%BA%BFt")
    assert '"' not in response.headers["Content-Disposition"]


def test_views_pass_as_of_and_the_agency_context():
    gateway = worker_factory(GatewayService)
    moment = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=7)))
    gateway.agency_dossier(make_call(OFFICER, query={"as_of": moment}), code="C-260302-0001")
    context, code, as_of = gateway.dossier_rpc.get.call_args.args
    assert context["actor"]["agency_code"] == "W.00001" and as_of == "2026-03-02T10:00:00+07:00"
    assert code == "C-260302-0001"
    gateway.agency_action(make_call(OFFICER, body={"reason": "x"}), code="C-260302-0001", action="refuse")
    assert gateway.dossier_rpc.act.call_args.args[1:] == ("C-260302-0001", "refuse", {"reason": "x"})
    gateway.agency_queue(make_call(OFFICER, query={"status": "received", "overdue": True, "page": 2,
                                                   "page_size": 10}))
    assert gateway.dossier_rpc.agency_queue.call_args.args[1:] == ("received", True, 2, 10)


def test_my_list_passes_only_the_filters_given():
    gateway = worker_factory(GatewayService)
    gateway.list_my_dossiers(make_call(query={"status": "received", "page": 1, "page_size": 20}))
    assert gateway.dossier_rpc.list_mine.call_args.args[1:] == ("received", 1, 20)
    assert gateway.dossier_rpc.list_mine.call_args.kwargs == {}
    gateway.list_my_dossiers(make_call(query={"procedure_code": "1.001193", "submitted_from": dt.date(2026, 3, 1),
                                              "submitted_to": dt.date(2026, 3, 31), "page": 2, "page_size": 5}))
    assert gateway.dossier_rpc.list_mine.call_args.kwargs == {
        "procedure_code": "1.001193", "submitted_from": "2026-03-01", "submitted_to": "2026-03-31"}
