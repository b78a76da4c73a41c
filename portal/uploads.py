"""Checking an uploaded file before it goes to the API (which checks it again): size, type by
extension and by the file's own first bytes."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from flask_babel import gettext as _
from werkzeug.datastructures import FileStorage

SIGNATURES = {"application/pdf": (b"%PDF-",), "image/jpeg": (b"\xff\xd8\xff",), "image/png": (b"\x89PNG\r\n\x1a\n",)}
ACCEPT = ".pdf,.jpg,.jpeg,.png,application/pdf,image/jpeg,image/png"


@dataclass
class Checked:
    name: str
    content_type: str
    content: bytes

    def inline(self, requirement: str | None = None) -> dict:
        """The document as the API's JSON bodies carry it."""
        doc = {"name": self.name, "content_type": self.content_type,
               "content_base64": base64.b64encode(self.content).decode()}
        if requirement is not None:
            doc["requirement"] = requirement
        return doc


def check(upload: FileStorage | None, max_bytes: int, file_types: tuple[tuple[str, str], ...]
          ) -> tuple[Checked | None, str | None]:
    """(the file, None), (None, None) when nothing was chosen, or (None, a message for people)."""
    if upload is None or not upload.filename:
        return None, None
    name = upload.filename.replace("\\", "/").rsplit("/", 1)[-1].strip()[:200]
    content = upload.stream.read(max_bytes + 1)
    if len(content) > max_bytes:
        return None, _("The file is larger than %(size)s MB.", size=max_bytes // (1024 * 1024))
    if not content:
        return None, _("The file is empty.")
    types = dict(file_types)
    ext = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    content_type = types.get(ext)
    if content_type is None or not content.startswith(SIGNATURES[content_type]):
        return None, _("Only PDF, JPEG or PNG files are accepted.")
    return Checked(name, content_type, content), None
