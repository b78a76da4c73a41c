"""Removing what identity no longer needs: finished or abandoned registrations and sign-ins
(an abandoned registration still holds a password hash), used or expired challenges, long
expired refresh tokens, old messages of the local SMS stand-in, closed applicant notices and
waits left by an event that never came back."""

from __future__ import annotations

from portal_common.db import Database

RULES = (
    ("registrations", "created_at < now() - interval '2 days'"),
    ("logins", "created_at < now() - interval '2 days'"),
    ("challenges", "created_at < now() - interval '1 day'"),
    ("refresh_tokens", "expires_at < now() - interval '30 days'"),
    ("local_sms_outbox", "sent_at < now() - interval '7 days'"),
    ("applicant_notices", "status <> 'pending' AND created_at < now() - interval '30 days'"),
    ("notification_waits", "last_at < now() - interval '2 days'"),
)


def purge(db: Database) -> dict[str, int]:
    """Delete expired rows; returns how many per table."""
    removed = {}
    with db.transaction() as cur:
        for table, condition in RULES:
            cur.execute(f"DELETE FROM {table} WHERE {condition}")
            removed[table] = cur.rowcount
    return removed
