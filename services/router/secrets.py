"""Where the router finds an agency's callback signing secret, read again at every send.

A route names its secret (``AGENCY_SECRET_<NAME>``), never holds it. With
``AGENCY_SECRETS_DIR`` set, the file ``$AGENCY_SECRETS_DIR/AGENCY_SECRET_<NAME>`` (content
stripped) wins over the environment variable of that name; the file is read again whenever
its mtime, size or inode changes, so an operator - or a mounted Kubernetes / Docker secret -
rotates it in place without restarting the router.

``AGENCY_SECRET_<NAME>_PREVIOUS``, looked up the same way, is the secret being retired: while
it exists each callback is signed with both (``domain.signing.signed_headers``), so the agency accepts
deliveries whether it has switched yet or not. Remove it to end the overlap.

Secrets are never logged: warnings name the file and its mode only. The reading itself is the
shared library's (``portal_common.secrets``); this module fixes the router's names and folder.
"""

from __future__ import annotations

import logging
import os
import re

from portal_common import config, secrets
from portal_common.secrets import PREVIOUS_SUFFIX, SecretStatus, previous_ref

__all__ = ["PREVIOUS_SUFFIX", "SecretStatus", "SecretStore", "previous_ref"]

log = logging.getLogger(__name__)
_REF = re.compile(r"^AGENCY_SECRET_[A-Z0-9_]{1,80}$")


class SecretStore(secrets.SecretStore):
    """The agencies' secrets: ``AGENCY_SECRET_*`` names only, from ``directory`` (when set)
    and the environment (unprefixed)."""

    def __init__(self, directory: str | os.PathLike | None = None):
        super().__init__(directory, _REF, label="router", logger=log)

    @classmethod
    def from_env(cls) -> SecretStore:
        return cls(config.env("AGENCY_SECRETS_DIR", None, "router"))
