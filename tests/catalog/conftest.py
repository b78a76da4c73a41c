"""Fixtures of the catalog tests: the seeded catalog schema of this run's database."""

from __future__ import annotations

import uuid

import pytest

from portal_common.db import Database


@pytest.fixture(scope="session")
def catalog_db(migrated_database):
    db = Database(migrated_database, "catalog", size=4)
    yield db
    db.close()


@pytest.fixture
def unique_code():
    """A fresh procedure / agency code, so tests that change the catalog leave the seed alone."""
    return lambda prefix="T": f"{prefix}-{uuid.uuid4().hex[:12]}"


def procedure_payload(code: str, **over) -> dict:
    body = {
        "code": code, "name": "Cấp giấy phép thử nghiệm khai thác đá ong", "field": "xay_dung",
        "target": "business", "levels": ["province"], "agency_kinds": ["province_construction"],
        "processing_days": 12, "online_level": "partial",
        "required_documents": [{"id": "tp1", "name": "Đơn đề nghị cấp giấy phép", "mandatory": True,
                                "original_or_copy": "original", "count": 1, "form_template": "mau-01"}],
        "fees": [{"name": "Lệ phí", "amount_vnd": 100000}], "result_documents": ["Giấy phép"],
        "legal_bases": ["Luật Khoáng sản"],
    }
    body.update(over)
    return body
