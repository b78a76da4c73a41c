"""Removing what identity no longer needs: finished or abandoned registrations and sign-ins
(an abandoned registration still holds a password hash), used or expired challenges, long
expired refresh tokens, old messages of the local SMS stand-in, closed applicant notices and
waits left by an event that never came back (the rules: ``repository.EXPIRY_RULES``)."""

from __future__ import annotations

from portal_common.db import Database
from services.identity import repository as repo


def purge(db: Database) -> dict[str, int]:
    """Delete expired rows; returns how many per table."""
    with db.transaction() as cur:
        return repo.purge_expired(cur)
