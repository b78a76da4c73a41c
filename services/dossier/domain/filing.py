"""What identifies a filing: a retry must repeat it for its Idempotency-Key to return the
first dossier (the one hash of a submission; a draft's filing uses it too)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from services.dossier.domain.documents import Upload


def filing_hash(procedure_code: str, agency_code: str, applicant: dict[str, Any], form: dict[str, Any],
                uploads: list[Upload]) -> str:
    """SHA-256 of the filing as sent: procedure, agency, applicant, form, and each document's
    requirement, name, content type and content hash."""
    body = json.dumps({"procedure": procedure_code, "agency": agency_code, "applicant": applicant, "form": form,
                       "documents": [[u.requirement, u.name, u.content_type, u.sha256] for u in uploads]},
                      sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(body.encode()).hexdigest()
