"""Clean-up of rows identity no longer needs, against the real identity schema."""

from __future__ import annotations

import uuid

import pytest

from services.identity.application import housekeeping

pytestmark = pytest.mark.integration


def test_purge_removes_old_rows_and_keeps_fresh_ones(identity_db):
    old, fresh = uuid.uuid4(), uuid.uuid4()
    with identity_db.transaction() as cur:
        for reg_id, age in ((old, "3 days"), (fresh, "1 minute")):
            cur.execute("INSERT INTO registrations (id, method, identifier, phone, data, otp_hash, otp_expires_at, "
                        "created_at) VALUES (%s, 'mobile', '001090012345', '0912345678', "
                        "'{\"password_hash\": \"$argon2id$x\"}', '\\x00', now(), now() - %s::interval)",
                        (str(reg_id), age))
            cur.execute("INSERT INTO challenges (id, nonce, purpose, expires_at, created_at) "
                        "VALUES (%s, 'n', 'login', now(), now() - %s::interval)", (str(reg_id), age))
    removed = housekeeping.purge(identity_db)
    assert removed["registrations"] >= 1 and removed["challenges"] >= 1
    with identity_db.transaction() as cur:
        cur.execute("SELECT id FROM registrations WHERE id = ANY(%s::uuid[])", ([str(old), str(fresh)],))
        assert [r["id"] for r in cur.fetchall()] == [fresh]
        cur.execute("SELECT id FROM challenges WHERE id = ANY(%s::uuid[])", ([str(old), str(fresh)],))
        assert [r["id"] for r in cur.fetchall()] == [fresh]
