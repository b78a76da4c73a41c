"""Codes of catalog entries (procedures, agencies, life events): short ASCII identifiers."""

from __future__ import annotations

import re
from typing import Any

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")


def valid_code(code: Any) -> bool:
    """Codes are short ASCII identifiers; anything else cannot name a catalog entry."""
    return isinstance(code, str) and bool(CODE_RE.match(code))
