"""The portal's settings, from environment variables with safe local defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name} must be an integer, not {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    """What the portal needs to know; read once at start-up."""

    gateway_url: str = field(default_factory=lambda: os.environ.get(
        "PORTAL_GATEWAY_URL", "http://127.0.0.1:8000").rstrip("/"))
    host: str = field(default_factory=lambda: os.environ.get("PORTAL_HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: _int("PORTAL_PORT", 8080))
    public_url: str = field(default_factory=lambda: os.environ.get("PORTAL_PUBLIC_URL", "").rstrip("/"))
    max_upload_bytes: int = field(default_factory=lambda: _int("PORTAL_MAX_UPLOAD_BYTES", 5 * 1024 * 1024))
    session_ttl: int = field(default_factory=lambda: _int("PORTAL_SESSION_TTL", 7200))
    # Sessions shared by every portal process (PostgreSQL); empty: this process's memory only.
    session_database_url: str = field(default_factory=lambda: os.environ.get("PORTAL_SESSION_DATABASE_URL", ""))
    threads: int = field(default_factory=lambda: _int("PORTAL_THREADS", 8))
    timeout: float = 30.0
    # What the dossier service accepts (it checks the bytes again): extension -> content type.
    file_types: tuple[tuple[str, str], ...] = (
        (".pdf", "application/pdf"), (".jpg", "image/jpeg"), (".jpeg", "image/jpeg"), (".png", "image/png"))
