"""Fixtures of the dossier tests: an isolated, migrated dossier schema per test."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from portal_common.db import Database
from portal_common.eventstore import EventStore
from portal_common.eventstore.events import Actor, EventContext
from portal_common.migrations import migrate
from services.dossier.application import Dossiers, on_postgres
from services.dossier.domain.access import Caller
from services.dossier.domain.documents import check_upload

PDF = b"%PDF-1.4\n% test document\n"
PROCEDURE = {"code": "1.000001", "version": 3, "name": "Birth registration", "processing_days": 3}


def _repository(database_url: str):
    schema = f"dossier_t_{uuid.uuid4().hex[:10]}"
    migrate(database_url, schema, "services.dossier", create_database=False)
    # concurrent tests queue for these; kept small because the PostgreSQL server is shared
    db = Database(database_url, schema, size=10)
    return on_postgres(db, EventStore(db))


@pytest.fixture
def repo(database_url):
    """A repository on a schema of its own (event log + the dossier migrations)."""
    repository = _repository(database_url)
    yield repository
    repository.repository.db.close()


@pytest.fixture(scope="module")
def shared_repo(database_url):
    """One schema for a module whose tests each work on dossiers of their own."""
    repository = _repository(database_url)
    yield repository
    repository.repository.db.close()


def applicant_ctx(account_id: str = "acc-1") -> tuple[Caller, EventContext]:
    return Caller("applicant", account_id=account_id), EventContext(actor=Actor("citizen", account_id))


def agency_ctx(agency: str = "H29.01") -> tuple[Caller, EventContext]:
    return (Caller("agency", account_id=f"officer-{agency}", agency_code=agency),
            EventContext(actor=Actor("officer", f"officer-{agency}", agency)))


def submit(repo: Dossiers, owner: str = "acc-1", agency: str = "H29.01", key: str | None = None,
           now: dt.datetime | None = None, content: bytes = PDF, name: str = "Nguyen Van A", kind: str = "citizen",
           fees: list | None = None, fee_exemptions: list | None = None, also=None):
    _, ctx = applicant_ctx(owner)
    upload = check_upload("form", "form.pdf", "application/pdf", content, "documents.0")
    state, created = repo.submit(
        owner={"account_id": owner, "kind": kind, "subject": "001090000001"},
        applicant={"full_name": name, "province": "01", "ward": "00001"}, form={"purpose": "x"},
        procedure=PROCEDURE, agency={"code": agency, "name": f"Agency {agency}", "level": "commune"},
        uploads=[upload], idempotency_key=key, context=ctx, now=now, fees=fees, fee_exemptions=fee_exemptions,
        also=also)
    return state, created
