"""What identifies a filing: a retry must repeat it for its Idempotency-Key to return the
first dossier (the one hash of a submission; a draft's filing uses it too)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from services.dossier.domain.documents import Upload


def filing_hash(procedure_code: str, agency_code: str, applicant: dict[str, Any], form: dict[str, Any],
                uploads: list[Upload], fee_exemptions: list[dict[str, Any]] | None = None) -> str:
    """SHA-256 of the filing as sent: procedure, agency, applicant, form, each document's
    requirement, name, content type and content hash, and the declared fee exemptions (only
    when there are some, so the hash of a filing without any is what it always was)."""
    filing: dict[str, Any] = {"procedure": procedure_code, "agency": agency_code, "applicant": applicant,
                              "form": form,
                              "documents": [[u.requirement, u.name, u.content_type, u.sha256] for u in uploads]}
    if fee_exemptions:
        filing["fee_exemptions"] = sorted([str(c.get("fee_id")), str(c.get("exemption"))] for c in fee_exemptions)
    body = json.dumps(filing, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(body.encode()).hexdigest()
