"""Where the router finds an agency's callback signing secret, read again at every send.

A route names its secret (``AGENCY_SECRET_<NAME>``), never holds it. With
``AGENCY_SECRETS_DIR`` set, the file ``$AGENCY_SECRETS_DIR/AGENCY_SECRET_<NAME>`` (content
stripped) wins over the environment variable of that name; the file is read again whenever
its mtime, size or inode changes, so an operator - or a mounted Kubernetes / Docker secret -
rotates it in place without restarting the router.

``AGENCY_SECRET_<NAME>_PREVIOUS``, looked up the same way, is the secret being retired: while
it exists each callback is signed with both (``domain.signing.signed_headers``), so the agency accepts
deliveries whether it has switched yet or not. Remove it to end the overlap.

Secrets are never logged: warnings name the file and its mode only.
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

log = logging.getLogger(__name__)
PREVIOUS_SUFFIX = "_PREVIOUS"
# Group read is tolerated (a secret mounted for a group); anything wider is warned about.
_TOLERATED_MODE = 0o640
_REF = re.compile(r"^AGENCY_SECRET_[A-Z0-9_]{1,80}$")


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
    """Reads secrets from ``directory`` (when set) and the environment; caches file contents
    by path and ``(mtime, size, inode)`` so an unchanged file is not read at every send."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory else None
        self._cache: dict[Path, tuple[tuple[int, int, int], str]] = {}
        self._warned: set[tuple[Path, int]] = set()

    @classmethod
    def from_env(cls) -> SecretStore:
        return cls(config.env("AGENCY_SECRETS_DIR", None, "router"))

    def get(self, ref: str | None) -> str | None:
        """The secret named ``ref``: its file if present and non-empty, else the variable."""
        if not ref or not _REF.match(ref):
            return None
        from_file = self._read_file(ref)
        return from_file if from_file else config.env(ref)

    def pair(self, ref: str | None) -> tuple[str | None, str | None]:
        """``(current, previous)``; previous is None outside a rotation or when it equals current."""
        current = self.get(ref)
        previous = self.get(previous_ref(ref)) if ref else None
        return current, (previous if previous != current else None)

    def status(self, ref: str) -> SecretStatus:
        """Which source ``get`` would use for ``ref`` and, for a file, how old it is."""
        if not _REF.match(ref):
            return SecretStatus(ref, "missing")
        path = self._path(ref)
        if path is not None and self._read_file(ref):
            return SecretStatus(ref, "file", max(0.0, time.time() - path.stat().st_mtime))
        return SecretStatus(ref, "env" if config.env(ref) else "missing")

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
            log.warning("router: cannot read secret file %s: %s", path, type(exc).__name__)
            return None
        self._cache[path] = (key, value)
        return value

    def _warn_if_open(self, path: Path, mode: int) -> None:
        perms = stat.S_IMODE(mode)
        if perms & ~_TOLERATED_MODE & 0o077 and (path, perms) not in self._warned:
            self._warned.add((path, perms))
            log.warning("router: secret file %s has mode %o; keep it 0600 or 0640", path, perms)
