"""Secrets read from a folder of files or the environment, read again when a file changes.

A secret is named (``AGENCY_SECRET_<NAME>``, ``PAYMENT_MERCHANT_SECRET``), never held in
configuration. With a directory set (the service's ``..._SECRETS_DIR``), the file of that
name in it (content stripped) wins over the environment variable of that name; the file is
read again whenever its mtime, size or inode changes, so an operator - or a mounted Kubernetes
or Docker secret - rotates it in place without a restart. ``<NAME>_PREVIOUS``, looked up the
same way, is the secret being retired: a service keeps it working beside the current one
while the other party switches (``pair``), and the overlap ends when it is removed.

Only names matching the store's pattern are ever read, so a name from data (a route's
``secret_ref``) cannot reach another file or variable. Secret values are never logged:
warnings name the file and its mode only. The router (agency callback secrets) and the
payment service (the merchant secret) each keep one store.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from portal_common import config

PREVIOUS_SUFFIX = "_PREVIOUS"
# Group read is tolerated (a secret mounted for a group); anything wider is warned about.
TOLERATED_MODE = 0o640
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SecretStatus:
    """Where a secret comes from, without its value (for operators)."""

    ref: str
    source: str  # "file", "env" or "missing"
    file_age_s: float | None = None

    def as_dict(self) -> dict:
        return {"ref": self.ref, "source": self.source,
                "file_age_s": None if self.file_age_s is None else round(self.file_age_s, 1)}


def previous_ref(ref: str) -> str:
    """The name of the secret being retired beside ``ref``."""
    return ref + PREVIOUS_SUFFIX


class SecretStore:
    """Reads the secrets whose names match ``pattern`` from ``directory`` (when set) and the
    environment (``config.env(name, service=env_service)``); caches file contents by path and
    ``(mtime, size, inode)`` so an unchanged file is not read at every use.

    ``label`` starts each warning (the service's name) and ``logger`` writes them."""

    def __init__(self, directory: str | os.PathLike | None, pattern: str | re.Pattern[str], *,
                 env_service: str | None = None, label: str = "secrets",
                 logger: logging.Logger | None = None):
        self.directory = Path(directory) if directory else None
        self.pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
        self.env_service = env_service
        self.label = label
        self.log = logger or _log
        self._cache: dict[Path, tuple[tuple[int, int, int], str]] = {}
        self._warned: set[tuple[Path, int]] = set()

    def allowed(self, ref: str | None) -> bool:
        return bool(ref) and self.pattern.fullmatch(ref) is not None

    def get(self, ref: str | None) -> str | None:
        """The secret named ``ref``: its file if present and non-empty, else the variable."""
        if not self.allowed(ref):
            return None
        from_file = self._read_file(ref)
        return from_file if from_file else config.env(ref, None, self.env_service)

    def pair(self, ref: str | None) -> tuple[str | None, str | None]:
        """``(current, previous)``; previous is None outside a rotation or when it equals current."""
        current = self.get(ref)
        previous = self.get(previous_ref(ref)) if ref else None
        return current, (previous if previous != current else None)

    def status(self, ref: str) -> SecretStatus:
        """Which source ``get`` would use for ``ref`` and, for a file, how old it is."""
        if not self.allowed(ref):
            return SecretStatus(ref, "missing")
        path = self._path(ref)
        if path is not None and self._read_file(ref):
            return SecretStatus(ref, "file", max(0.0, time.time() - path.stat().st_mtime))
        return SecretStatus(ref, "env" if config.env(ref, None, self.env_service) else "missing")

    def _path(self, ref: str) -> Path | None:
        return self.directory / ref if self.directory else None

    def _read_file(self, ref: str) -> str | None:
        path = self._path(ref)
        if path is None:
            return None
        try:
            st = path.stat()  # follows the symlinks of a mounted Kubernetes secret
        except OSError:
            self._cache.pop(path, None)
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        self._warn_if_open(path, st.st_mode)
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            value = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeError) as exc:
            self.log.warning("%s: cannot read secret file %s: %s", self.label, path, type(exc).__name__)
            return None
        self._cache[path] = (key, value)
        return value

    def _warn_if_open(self, path: Path, mode: int) -> None:
        perms = stat.S_IMODE(mode)
        if perms & ~TOLERATED_MODE & 0o077 and (path, perms) not in self._warned:
            self._warned.add((path, perms))
            self.log.warning("%s: secret file %s has mode %o; keep it 0600 or 0640", self.label, path, perms)
