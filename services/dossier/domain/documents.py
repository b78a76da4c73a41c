"""Checks on an attached document before it is stored: size, type (by its bytes), name.

The declared content type must agree with the file's own signature, so a renamed
executable is not stored as a "PDF". Documents are addressed by the SHA-256 of their bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import unicodedata
from dataclasses import dataclass

from portal_common.errors import InvalidInput

SIGNATURES = {
    "application/pdf": (b"%PDF-",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
}
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
MAX_NAME = 255


@dataclass(frozen=True)
class Upload:
    """A document checked and ready to store."""

    requirement: str | None
    name: str
    content_type: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def size(self) -> int:
        return len(self.content)


def decode_base64(value: str, field: str) -> bytes:
    """Strict base64 (no stray characters), or InvalidInput naming the field."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidInput("invalid_document", "A document is not valid base64.",
                           [{"field": field, "message": "not valid base64"}]) from None


def clean_name(name: str) -> str | None:
    """A file name without path parts or control characters, or None when nothing is left."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        return None
    return name[:MAX_NAME] or None


def check_upload(requirement: str | None, name: str, content_type: str, content: bytes, field: str,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> Upload:
    """An ``Upload``, or InvalidInput listing what is wrong with this document."""
    problems = []
    clean = clean_name(name)
    if clean is None:
        problems.append({"field": f"{field}.name", "message": "invalid file name"})
    content_type = (content_type or "").split(";", 1)[0].strip().lower()
    if content_type not in SIGNATURES:
        problems.append({"field": f"{field}.content_type",
                         "message": f"type not accepted (allowed: {', '.join(sorted(SIGNATURES))})"})
    elif not content.startswith(SIGNATURES[content_type]):
        problems.append({"field": f"{field}.content", "message": f"content is not {content_type}"})
    if not content:
        problems.append({"field": f"{field}.content", "message": "empty document"})
    elif len(content) > max_bytes:
        problems.append({"field": f"{field}.content", "message": f"larger than {max_bytes} bytes"})
    if problems:
        raise InvalidInput("invalid_document", "A document was not accepted.", problems)
    return Upload(requirement, clean, content_type, content)
