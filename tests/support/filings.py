"""Complete dossier filings for tests that submit through the gateway."""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import Any


def document(requirement: str, text: str) -> dict[str, str]:
    """A small PDF answering one required document."""
    content = b"%PDF-1.4\n% " + text.encode() + b"\n%%EOF\n"
    return {"requirement": requirement, "name": f"{requirement}.pdf", "content_type": "application/pdf",
            "content_base64": base64.b64encode(content).decode()}


def complete_filing(procedure: dict, agency: dict, full_name: str, form: dict | None = None) -> dict[str, Any]:
    """Every mandatory document of ``procedure``, filed at ``agency`` by an applicant living in
    the agency's province and ward (when it serves one)."""
    area = {key: str(agency[f"{key}_code"]) for key in ("province", "ward") if agency.get(f"{key}_code")}
    return {"procedure_code": procedure["code"], "agency_code": agency["code"],
            "applicant": {"full_name": full_name, **area}, "form": form or {},
            "documents": [document(d["id"], d["name"]) for d in procedure["required_documents"] if d["mandatory"]]}


def first_office_filing(gateway_url: str, procedure_code: str, full_name: str) -> dict[str, Any]:
    """A complete filing at the first agency the catalog offers for ``procedure_code``."""

    def get(path: str) -> Any:
        with urllib.request.urlopen(f"{gateway_url}/api/v1{path}", timeout=30) as resp:
            return json.loads(resp.read())

    agencies = get(f"/procedures/{procedure_code}/agencies")
    agencies = agencies.get("items", agencies) if isinstance(agencies, dict) else agencies
    return complete_filing(get(f"/procedures/{procedure_code}"), agencies[0], full_name)
