"""identity's tables (SQL only; every function takes the cursor of the caller's transaction,
which the application layer opens and closes)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

from portal_common.db import Prepared, StatementBatch
from services.identity.domain.certificates import RevocationList

ACCOUNT_COLUMNS = (
    "id, role, identifier, legacy_id, full_name, date_of_birth, gender, phone, bhxh_code, agency_code, "
    "representative_cccd, password_hash, certificate_fingerprint, methods, status, created_at, assurance_level"
)


# -- accounts ----------------------------------------------------------------------------

def account_by_id(cur, account_id: uuid.UUID | str, for_update: bool = False) -> dict | None:
    cur.execute(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = %s{' FOR UPDATE' if for_update else ''}",
                (str(account_id),))
    return cur.fetchone()


def account_by_identifier(cur, identifier: str) -> dict | None:
    """By CCCD / tax code / staff identifier, or by an old CMT mapped to an account."""
    cur.execute(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE identifier = %s OR legacy_id = %s "
                "ORDER BY (identifier = %s) DESC LIMIT 1", (identifier, identifier, identifier))
    return cur.fetchone()


def identifier_taken(cur, *values: str | None) -> bool:
    vals = [v for v in values if v]
    if not vals:
        return False
    cur.execute("SELECT 1 FROM accounts WHERE identifier = ANY(%s) OR legacy_id = ANY(%s) LIMIT 1", (vals, vals))
    return cur.fetchone() is not None


def bhxh_taken(cur, bhxh_code: str) -> bool:
    cur.execute("SELECT 1 FROM accounts WHERE bhxh_code = %s", (bhxh_code,))
    return cur.fetchone() is not None


def certificate_taken(cur, fingerprint: str) -> bool:
    cur.execute("SELECT 1 FROM accounts WHERE certificate_fingerprint = %s", (fingerprint,))
    return cur.fetchone() is not None


def insert_account(cur, account: dict[str, Any]) -> None:
    cols = [k for k in account if k in ACCOUNT_COLUMNS.replace(" ", "").split(",")]
    cur.execute(
        f"INSERT INTO accounts ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})",
        [account[c] for c in cols],
    )


def set_password_hash(cur, account_id, password_hash: str) -> None:
    cur.execute("UPDATE accounts SET password_hash = %s, updated_at = now() WHERE id = %s",
                (password_hash, str(account_id)))


def lock_identifier(cur, identifier: str) -> None:
    """Serialise the transactions that create an account under ``identifier`` (until commit)."""
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(identifier.encode()),))


@contextlib.contextmanager
def savepoint(cur, name: str) -> Iterator[None]:
    """Roll the block's writes back, and only them, when it raises (the error still propagates)."""
    with cur.connection.cursor() as probe:
        probe.execute(f"SAVEPOINT {name}")
    try:
        yield
    except Exception:
        with cur.connection.cursor() as probe:
            probe.execute(f"ROLLBACK TO SAVEPOINT {name}")
        raise


def add_certificate_method(cur, account_id, fingerprint: str) -> None:
    """Remember the certificate an account signed in with, and that it signs in with one."""
    cur.execute("UPDATE accounts SET certificate_fingerprint = %s, methods = array(SELECT DISTINCT "
                "unnest(methods || ARRAY['certificate'])), updated_at = now() WHERE id = %s",
                (fingerprint, str(account_id)))


def staff_account(cur, identifier: str) -> dict | None:
    cur.execute(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE identifier = %s", (identifier,))
    return cur.fetchone()


def lock_live_refresh_tokens(cur, account_id) -> None:
    """Lock the account's live refresh tokens before the account itself, the order a refresh takes them in."""
    cur.execute("SELECT 1 FROM refresh_tokens WHERE account_id = %s AND revoked_at IS NULL FOR UPDATE",
                (str(account_id),))


def staff_by_id(cur, account_id: uuid.UUID, roles: tuple[str, ...]) -> dict | None:
    """A staff account of ``roles``, locked: sign-ins read it with a lock too, so none slips past a disable."""
    cur.execute(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = %s AND role = ANY(%s) FOR UPDATE",
                (str(account_id), list(roles)))
    return cur.fetchone()


def set_staff_status(cur, account_id, status: str) -> None:
    cur.execute("UPDATE accounts SET status = %s, updated_at = now(), "
                "disabled_at = CASE WHEN %s = 'disabled' THEN now() ELSE disabled_at END WHERE id = %s",
                (status, status, str(account_id)))


def staff_page(cur, roles: tuple[str, ...], filters: dict[str, Any], page: int, page_size: int) -> tuple[list, int]:
    """One page of staff accounts (newest first) and how many match."""
    where, args = ["role = ANY(%s)"], [list(roles)]
    for column in ("agency_code", "status", "role"):
        if filters.get(column):
            where.append(f"{column} = %s")
            args.append(filters[column])
    sql_where = " AND ".join(where)
    cur.execute(f"SELECT count(*) AS n FROM accounts WHERE {sql_where}", args)
    total = cur.fetchone()["n"]
    cur.execute(f"SELECT id, role, identifier, full_name, agency_code, status, created_at, disabled_at "
                f"FROM accounts WHERE {sql_where} ORDER BY created_at DESC, id LIMIT %s OFFSET %s",
                [*args, page_size, (page - 1) * page_size])
    return cur.fetchall(), total


def staff_activation(cur, identifier: str) -> dict | None:
    """The latest activation pending for a staff identifier, locked."""
    cur.execute("SELECT * FROM registrations WHERE method = 'staff' AND identifier = %s "
                "ORDER BY created_at DESC LIMIT 1 FOR UPDATE", (identifier,))
    return cur.fetchone()


def activate_staff(cur, account_id, password_hash: str) -> bool:
    """Set the password of a pending staff account and make it active; False when it is not pending."""
    cur.execute("UPDATE accounts SET password_hash = %s, status = 'active', updated_at = now() "
                "WHERE id = %s AND status = 'pending'", (password_hash, str(account_id)))
    return cur.rowcount > 0


def disabled_staff_since(cur, seconds: int) -> list[dict]:
    cur.execute("SELECT id AS account_id, disabled_at FROM accounts "
                "WHERE disabled_at > now() - make_interval(secs => %s)", (int(seconds),))
    return cur.fetchall()


# -- pending registrations and sign-ins --------------------------------------------------

def insert_registration(cur, reg_id: uuid.UUID, method: str, identifier: str, phone: str, data: dict,
                        otp_hash: bytes, expires_at: dt.datetime) -> None:
    cur.execute(
        "INSERT INTO registrations (id, method, identifier, phone, data, otp_hash, otp_expires_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (str(reg_id), method, identifier, phone, json.dumps(data, ensure_ascii=False), otp_hash, expires_at),
    )


def forget_registration_password(cur, reg_id) -> None:
    """A confirmed registration no longer needs the password hash it held."""
    cur.execute("UPDATE registrations SET data = data - 'password_hash' WHERE id = %s", (str(reg_id),))


def codes_sent_lately(cur, phone: str, window: dt.timedelta) -> int:
    """How many codes went to ``phone`` within ``window`` (registrations and sign-ins)."""
    cur.execute(
        "SELECT (SELECT coalesce(sum(sends), 0) FROM registrations WHERE phone = %s AND created_at > now() - %s) + "
        "(SELECT coalesce(sum(l.sends), 0) FROM logins l JOIN accounts a ON a.id = l.account_id "
        " WHERE a.phone = %s AND l.created_at > now() - %s) AS n",
        (phone, window, phone, window),
    )
    return cur.fetchone()["n"]


def pending_for_resend(cur, table: str, row_id) -> dict | None:
    """A registration or sign-in (id, status, phone), locked, for a new code."""
    if table == "registrations":
        cur.execute("SELECT id, status, phone FROM registrations WHERE id = %s FOR UPDATE", (str(row_id),))
    else:
        cur.execute("SELECT l.id, l.status, a.phone FROM logins l JOIN accounts a ON a.id = l.account_id "
                    "WHERE l.id = %s FOR UPDATE OF l", (str(row_id),))
    return cur.fetchone()


def replace_code(cur, table: str, row_id, otp_hash: bytes, expires_at: dt.datetime) -> None:
    """A new code for a pending row: attempts start again, and the old code stops working."""
    assert table in ("registrations", "logins")
    cur.execute(f"UPDATE {table} SET otp_hash = %s, otp_expires_at = %s, attempts = 0, status = 'pending', "
                "sends = sends + 1 WHERE id = %s", (otp_hash, expires_at, str(row_id)))


def registration(cur, reg_id: uuid.UUID, for_update: bool = True) -> dict | None:
    cur.execute(f"SELECT * FROM registrations WHERE id = %s{' FOR UPDATE' if for_update else ''}", (str(reg_id),))
    return cur.fetchone()


def count_attempt(cur, table: str, row_id, failed: bool = False) -> None:
    assert table in ("registrations", "logins")
    status = ", status = 'failed'" if failed else ""
    cur.execute(f"UPDATE {table} SET attempts = attempts + 1{status} WHERE id = %s", (str(row_id),))


def finish(cur, table: str, row_id) -> None:
    assert table in ("registrations", "logins")
    cur.execute(f"UPDATE {table} SET status = 'done' WHERE id = %s", (str(row_id),))


def insert_login(cur, login_id: uuid.UUID, account_id, method: str, otp_hash: bytes, expires_at: dt.datetime,
                 client: str | None) -> None:
    cur.execute(
        "INSERT INTO logins (id, account_id, method, otp_hash, otp_expires_at, client) VALUES (%s, %s, %s, %s, %s, %s)",
        (str(login_id), str(account_id), method, otp_hash, expires_at, client),
    )


def login(cur, login_id: uuid.UUID) -> dict | None:
    cur.execute("SELECT * FROM logins WHERE id = %s FOR UPDATE", (str(login_id),))
    return cur.fetchone()


def password_reset(cur, reset_id: uuid.UUID) -> dict | None:
    """A password reset (a ``logins`` row of method ``reset``) whose account still exists."""
    cur.execute("SELECT l.*, a.id AS aid FROM logins l JOIN accounts a ON a.id = l.account_id "
                "WHERE l.id = %s AND l.method = 'reset'", (str(reset_id),))
    return cur.fetchone()


# -- challenges ---------------------------------------------------------------------------

def insert_challenge(cur, challenge_id: uuid.UUID, nonce: str, purpose: str, expires_at: dt.datetime) -> None:
    cur.execute("INSERT INTO challenges (id, nonce, purpose, expires_at) VALUES (%s, %s, %s, %s)",
                (str(challenge_id), nonce, purpose, expires_at))


def take_challenge(cur, challenge_id: uuid.UUID) -> dict | None:
    """Lock and return the challenge; the caller marks it used in the same transaction."""
    cur.execute("SELECT * FROM challenges WHERE id = %s FOR UPDATE", (str(challenge_id),))
    return cur.fetchone()


def use_challenge(cur, challenge_id: uuid.UUID) -> None:
    cur.execute("UPDATE challenges SET used_at = now() WHERE id = %s", (str(challenge_id),))


# -- refresh tokens -----------------------------------------------------------------------

def insert_refresh(cur, token_id: uuid.UUID, family: uuid.UUID, account_id, token_hash: bytes,
                   expires_at: dt.datetime, assurance_level: int | None = None) -> None:
    cur.execute(
        "INSERT INTO refresh_tokens (id, family, account_id, token_hash, expires_at, assurance_level) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (str(token_id), str(family), str(account_id), token_hash, expires_at, assurance_level),
    )


def refresh_row(cur, token_id: uuid.UUID) -> dict | None:
    cur.execute("SELECT * FROM refresh_tokens WHERE id = %s FOR UPDATE", (str(token_id),))
    return cur.fetchone()


def revoke_refresh(cur, token_id, reason: str) -> None:
    cur.execute("UPDATE refresh_tokens SET revoked_at = now(), revoked_reason = %s "
                "WHERE id = %s AND revoked_at IS NULL", (reason, str(token_id)))


def revoke_family(cur, family, reason: str) -> int:
    cur.execute("UPDATE refresh_tokens SET revoked_at = now(), revoked_reason = %s "
                "WHERE family = %s AND revoked_at IS NULL", (reason, str(family)))
    return cur.rowcount


def session_of(cur, account_id, family: uuid.UUID) -> bool:
    """Whether ``family`` is a session of ``account_id``."""
    cur.execute("SELECT 1 FROM refresh_tokens WHERE family = %s AND account_id = %s LIMIT 1",
                (str(family), str(account_id)))
    return cur.fetchone() is not None


def revoke_account_sessions(cur, account_id, reason: str) -> int:
    return len(revoke_account_session_ids(cur, account_id, reason))


def revoke_account_session_ids(cur, account_id, reason: str) -> list[str]:
    """Revoke every live refresh token of the account; the sessions (families) they were in."""
    cur.execute("UPDATE refresh_tokens SET revoked_at = now(), revoked_reason = %s "
                "WHERE account_id = %s AND revoked_at IS NULL RETURNING family", (reason, str(account_id)))
    return sorted({str(r["family"]) for r in cur.fetchall()})


def revoked_sessions_since(cur, seconds: int) -> list[dict]:
    """Sessions ended in the last ``seconds`` (a rotation ends no session), newest revocation each."""
    cur.execute("SELECT family, account_id, max(revoked_at) AS revoked_at, "
                "bool_or(revoked_reason LIKE 'password%%') AS password FROM refresh_tokens "
                "WHERE revoked_at > now() - make_interval(secs => %s) AND revoked_reason <> 'rotated' "
                "GROUP BY family, account_id", (int(seconds),))
    return cur.fetchall()


def revoked_agency_clients_since(cur, seconds: int) -> list[dict]:
    cur.execute("SELECT account_id, revoked_at FROM agency_clients "
                "WHERE revoked_at > now() - make_interval(secs => %s)", (int(seconds),))
    return cur.fetchall()


# -- lockout counters ---------------------------------------------------------------------

def failure_state(cur, scope: str, key: str, for_update: bool = False) -> dict | None:
    cur.execute(f"SELECT failures, lockouts, locked_until, last_failure_at FROM signin_failures "
                f"WHERE scope = %s AND key = %s"
                f"{' FOR UPDATE' if for_update else ''}", (scope, key))
    return cur.fetchone()


def save_failure_state(cur, scope: str, key: str, failures: int, lockouts: int,
                       locked_until: dt.datetime | None) -> None:
    cur.execute(
        "INSERT INTO signin_failures (scope, key, failures, lockouts, locked_until, last_failure_at) "
        "VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (scope, key) DO UPDATE SET failures = excluded.failures, "
        "lockouts = excluded.lockouts, locked_until = excluded.locked_until, last_failure_at = now()",
        (scope, key, failures, lockouts, locked_until),
    )


def clear_failures(cur, scope: str, key: str) -> None:
    """A success: the count and the back-off start again."""
    cur.execute("UPDATE signin_failures SET failures = 0, lockouts = 0 WHERE scope = %s AND key = %s",
                (scope, key))


# -- trusted certificate authorities ------------------------------------------------------

def trusted_ca_pems(cur) -> list[str]:
    cur.execute("SELECT pem FROM trusted_cas ORDER BY added_at")
    return [r["pem"] for r in cur.fetchall()]


def trusted_ca_rows(cur) -> list[dict]:
    cur.execute("SELECT pem, added_at FROM trusted_cas ORDER BY added_at, fingerprint")
    return cur.fetchall()


def add_trusted_ca(cur, fingerprint: str, subject: str, pem: str) -> bool:
    """False when this certificate was trusted already."""
    cur.execute("INSERT INTO trusted_cas (fingerprint, subject, pem) VALUES (%s, %s, %s) "
                "ON CONFLICT (fingerprint) DO NOTHING", (fingerprint, subject, pem))
    return cur.rowcount == 1


# -- certificate revocation lists ---------------------------------------------------------

_CRL_FIELDS = ("issuer_hash, signer_key, issuer_der, issuer, crl_number, this_update, next_update, "
               "revoked_count, issuer_pem")


def lock_crl_issuer(cur, issuer_hash: str) -> None:
    """Serialise imports for one issuer until the transaction ends (the newer one must win)."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext('crl:' || %s))", (issuer_hash,))


def held_crl(cur, issuer_hash: str, signer_key: str) -> dict | None:
    cur.execute(f"SELECT {_CRL_FIELDS}, der FROM certificate_revocation_lists "
                "WHERE issuer_hash = %s AND signer_key = %s", (issuer_hash, signer_key))
    return cur.fetchone()


def crl_issuer_pems(cur, issuer_hash: str) -> list[str]:
    """Intermediate CA certificates that signed earlier CRLs of this issuer name."""
    cur.execute("SELECT issuer_pem FROM certificate_revocation_lists WHERE issuer_hash = %s "
                "AND issuer_pem IS NOT NULL", (issuer_hash,))
    return [r["issuer_pem"] for r in cur.fetchall()]


def save_crl(cur, row: dict) -> None:
    cur.execute(
        "INSERT INTO certificate_revocation_lists (issuer_hash, signer_key, issuer_der, issuer, crl_number, "
        "this_update, next_update, revoked_serials, revoked_count, der, issuer_pem) VALUES (%(issuer_hash)s, "
        "%(signer_key)s, %(issuer_der)s, %(issuer)s, %(crl_number)s, %(this_update)s, %(next_update)s, "
        "%(revoked_serials)s, %(revoked_count)s, %(der)s, %(issuer_pem)s) ON CONFLICT (issuer_hash, signer_key) "
        "DO UPDATE SET issuer_der = excluded.issuer_der, issuer = excluded.issuer, crl_number = excluded.crl_number, "
        "this_update = excluded.this_update, next_update = excluded.next_update, "
        "revoked_serials = excluded.revoked_serials, revoked_count = excluded.revoked_count, der = excluded.der, "
        "issuer_pem = COALESCE(excluded.issuer_pem, certificate_revocation_lists.issuer_pem), imported_at = now()",
        row)


def crl_rows(cur) -> list[dict]:
    """Every CRL held (without its serials: a list may revoke many), by issuer then newest."""
    cur.execute(f"SELECT {_CRL_FIELDS}, imported_at FROM certificate_revocation_lists "
                "ORDER BY issuer, this_update DESC")
    return cur.fetchall()


def crls_for(cur, issuer_hashes: list[str], serials: list[str]) -> list[dict]:
    """The CRLs held for these issuers, each with only those of ``serials`` it revokes."""
    cur.execute(f"SELECT {_CRL_FIELDS}, ARRAY(SELECT s FROM unnest(revoked_serials) AS s WHERE s = ANY(%s)) "
                "AS revoked FROM certificate_revocation_lists WHERE issuer_hash = ANY(%s)",
                (serials, issuer_hashes))
    return cur.fetchall()


def revocation_list_of(row: dict) -> RevocationList:
    """A stored CRL (as ``held_crl``, ``crl_rows`` or ``crls_for`` return it) as the domain reads it."""
    number = row["crl_number"]
    return RevocationList(
        bytes(row["issuer_der"]), row["issuer"], None if number is None else int(number), row["this_update"],
        row["next_update"], frozenset(int(s) for s in row.get("revoked") or ()), row["signer_key"],
        row["revoked_count"])


# -- agency systems -----------------------------------------------------------------------

def insert_agency_system(cur, account_id: str, client_id: str, agency_code: str, name: str,
                         secret_hash: bytes) -> None:
    """The system's account (role ``agency_system``) and its client credentials."""
    cur.execute("INSERT INTO accounts (id, role, identifier, full_name, agency_code, methods) "
                "VALUES (%s, 'agency_system', %s, %s, %s, '{client_credentials}')",
                (account_id, f"client:{client_id}", name, agency_code))
    cur.execute("INSERT INTO agency_clients (client_id, account_id, agency_code, name, secret_hash) "
                "VALUES (%s, %s, %s, %s, %s)", (client_id, account_id, agency_code, name, secret_hash))


def revoke_agency_system(cur, client_id: str) -> dict | None:
    """Revoke a live client and disable its account; its row (account_id, agency_code), or None."""
    cur.execute("UPDATE agency_clients SET revoked_at = now() WHERE client_id = %s AND revoked_at IS NULL "
                "RETURNING account_id, agency_code", (str(client_id)[:100],))
    row = cur.fetchone()
    if row is not None:
        cur.execute("UPDATE accounts SET status = 'disabled', updated_at = now() WHERE id = %s",
                    (str(row["account_id"]),))
    return row


def agency_client(cur, client_id: str) -> dict | None:
    """A client's secret hash and revocation with its account's columns."""
    cur.execute("SELECT c.secret_hash, c.revoked_at, a.* FROM agency_clients c JOIN accounts a "
                "ON a.id = c.account_id WHERE c.client_id = %s", (client_id,))
    return cur.fetchone()


# -- signing keys -------------------------------------------------------------------------

def lock_signing_keys(cur) -> None:
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(b"identity:signing-keys"),))


def newest_signing_kid(cur) -> str | None:
    cur.execute("SELECT kid FROM signing_keys ORDER BY created_at DESC LIMIT 1")
    row = cur.fetchone()
    return row["kid"] if row else None


def save_signing_key(cur, kid: str, algorithm: str, private_pem: str, public_jwk: dict, delay_s: float) -> None:
    """Store a key signing ``delay_s`` from now (a key stored again is published and waits again)."""
    cur.execute(
        "INSERT INTO signing_keys (kid, algorithm, private_pem, public_jwk, activates_at) "
        "VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s)) "
        "ON CONFLICT (kid) DO UPDATE SET retired_at = NULL, created_at = now(), activates_at = excluded.activates_at",
        (kid, algorithm, private_pem, json.dumps(public_jwk), delay_s),
    )


def published_jwks(cur, previous: int) -> list[dict]:
    """The keys waiting to sign, then the current one and ``previous - 1`` before it."""
    cur.execute(
        "(SELECT public_jwk, activates_at FROM signing_keys WHERE activates_at > now()) UNION ALL "
        "(SELECT public_jwk, activates_at FROM signing_keys WHERE activates_at <= now() "
        " ORDER BY activates_at DESC, created_at DESC LIMIT %s) ORDER BY activates_at DESC",
        (previous,))
    return [row["public_jwk"] for row in cur.fetchall()]


def current_signing_key(cur) -> dict | None:
    cur.execute("SELECT kid, private_pem FROM signing_keys WHERE activates_at <= now() "
                "ORDER BY activates_at DESC, created_at DESC LIMIT 1")
    return cur.fetchone()


# -- housekeeping -------------------------------------------------------------------------

EXPIRY_RULES = (
    ("registrations", "created_at < now() - interval '2 days'"),
    ("logins", "created_at < now() - interval '2 days'"),
    ("challenges", "created_at < now() - interval '1 day'"),
    ("refresh_tokens", "expires_at < now() - interval '30 days'"),
    ("local_sms_outbox", "sent_at < now() - interval '7 days'"),
    ("applicant_notices", "status <> 'pending' AND created_at < now() - interval '30 days'"),
    ("notification_waits", "last_at < now() - interval '2 days'"),
    ("vneid_states", "expires_at < now() - interval '1 day'"),
    ("vneid_pending_links", "expires_at < now() - interval '1 day'"),
    ("vneid_logout_tokens", "received_at < now() - interval '2 days'"),
)


def purge_expired(cur) -> dict[str, int]:
    """Delete the rows ``EXPIRY_RULES`` no longer needs; how many per table."""
    removed = {}
    for table, condition in EXPIRY_RULES:
        cur.execute(f"DELETE FROM {table} WHERE {condition}")
        removed[table] = cur.rowcount
    return removed


# -- applicant notifications --------------------------------------------------------------

def remember_dossier_owner(cur, dossier_code: str, account_id: str, kind: str) -> None:
    """The owner is fixed at filing: a later copy (a hand-over names the same owner) changes nothing."""
    cur.execute(Prepared("INSERT INTO dossier_owners (dossier_code, account_id, owner_kind) VALUES (%s, %s, %s) "
                         "ON CONFLICT (dossier_code) DO NOTHING"), (dossier_code, account_id, kind))


def remember_dossier_owners(cur, owners: list[tuple[str, str, str]]) -> None:
    """``remember_dossier_owner`` for several (code, account id, kind) in one statement."""
    if owners:
        codes, ids, kinds = (list(column) for column in zip(*owners, strict=True))
        cur.execute(Prepared("INSERT INTO dossier_owners (dossier_code, account_id, owner_kind) "
                             "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) "
                             "ON CONFLICT (dossier_code) DO NOTHING"), (codes, ids, kinds))


#: an account id in the canonical form, which can be cast to uuid and looked up by the key
_CANONICAL_UUID = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


_CLAIM_WITH_TARGETS = Prepared(
    "WITH claimed AS (INSERT INTO processed_events (consumer, event_id) "
    "SELECT %(consumer)s, e FROM unnest(%(events)s::uuid[]) AS e ON CONFLICT DO NOTHING RETURNING event_id) "
    "SELECT (SELECT COALESCE(json_agg(event_id), '[]') FROM claimed) AS claimed, "
    "(SELECT COALESCE(json_agg(t), '[]') FROM (SELECT o.dossier_code, o.account_id, a.id, a.role, a.phone, "
    "a.notify_sms FROM dossier_owners o LEFT JOIN accounts a ON a.id = CASE WHEN o.account_id ~ %(canonical)s "
    "THEN o.account_id::uuid END WHERE o.dossier_code = ANY(%(codes)s::text[])) t) AS targets")


def claim_with_targets(batch: StatementBatch, consumer: str, event_ids: list[str],
                       dossier_codes: list[str]) -> tuple[set[str], dict[str, dict]]:
    """``claim_many`` of ``event_ids`` (canonical, in one order) for ``consumer``, and whom to
    notify about ``dossier_codes``, in one statement sent with the statements ``batch`` keeps
    (so the owners it remembers are read): the ids not seen before, and by dossier code its
    owner's ``account_id`` and, when that names an account, the account's ``id``, ``role``,
    ``phone`` and ``notify_sms`` (None otherwise). One round trip where the claim and the read
    took one each."""
    row = batch.query(_CLAIM_WITH_TARGETS, {"consumer": consumer, "events": event_ids,
                                            "canonical": _CANONICAL_UUID, "codes": dossier_codes}).fetchone()
    return {str(e) for e in row["claimed"]}, {t["dossier_code"]: t for t in row["targets"]}


def dossier_owner(cur, dossier_code: str) -> str | None:
    cur.execute(Prepared("SELECT account_id FROM dossier_owners WHERE dossier_code = %s"), (dossier_code,))
    row = cur.fetchone()
    return row["account_id"] if row else None


def notification_target(cur, account_id: uuid.UUID | str, for_update: bool = False) -> dict | None:
    cur.execute(Prepared(f"SELECT id, role, phone, notify_sms FROM accounts WHERE id = %s"
                         f"{' FOR UPDATE' if for_update else ''}"), (str(account_id),))
    return cur.fetchone()


def set_notify_sms(cur, account_id: uuid.UUID | str, notify_sms: bool) -> dict | None:
    cur.execute("UPDATE accounts SET notify_sms = %s, updated_at = now() WHERE id = %s "
                "RETURNING id, role, phone, notify_sms", (notify_sms, str(account_id)))
    return cur.fetchone()


def note_wait(cur, event_id: str, dossier_code: str | None, reason: str) -> float:
    """Count one more wait for an event; seconds since its first."""
    cur.execute(
        "INSERT INTO notification_waits (event_id, dossier_code, reason) VALUES (%s, %s, %s) "
        "ON CONFLICT (event_id) DO UPDATE SET attempts = notification_waits.attempts + 1, "
        "reason = excluded.reason, last_at = now() "
        "RETURNING extract(epoch FROM now() - first_at) AS waited",
        (event_id, dossier_code, reason))
    return float(cur.fetchone()["waited"])


def forget_wait(cur, event_id: str) -> None:
    cur.execute(Prepared("DELETE FROM notification_waits WHERE event_id = %s"), (event_id,))


def insert_notice(cur, event_id: str, account_id: uuid.UUID | str, dossier_code: str, event_type: str,
                  body: str) -> None:
    cur.execute(Prepared("INSERT INTO applicant_notices (event_id, account_id, dossier_code, event_type, body) "
                         "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING"),
                (event_id, str(account_id), dossier_code, event_type, body))


def lease_notices(cur, lease_s: float, limit: int, event_id: str | None = None) -> list[dict]:
    """Take due pending notices (one, or the oldest ``limit``) for ``lease_s``: another sender skips them."""
    only = "AND n.event_id = %s " if event_id else ""
    args: list[Any] = [event_id] if event_id else []
    cur.execute(Prepared(
        "UPDATE applicant_notices n SET next_attempt_at = now() + make_interval(secs => %s), "
        "attempts = n.attempts + 1 FROM accounts a WHERE a.id = n.account_id AND n.event_id IN ("
        "  SELECT event_id FROM applicant_notices n WHERE status = 'pending' AND next_attempt_at <= now() "
        f"  {only}ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED) "
        "RETURNING n.event_id, n.account_id, n.dossier_code, n.event_type, n.body, n.attempts, "
        "a.role, a.phone, a.notify_sms"),
        [lease_s, *args, limit])
    return cur.fetchall()


def forget_waits(cur, event_ids: list[str]) -> None:
    if event_ids:
        cur.execute(Prepared("DELETE FROM notification_waits WHERE event_id = ANY(%s::uuid[])"), (event_ids,))


def insert_leased_notices(cur, notices: list[dict], lease_s: float) -> None:
    """Write several notices in one statement, each already leased for its first send (as
    ``lease_notices`` would: one attempt counted, not due again for ``lease_s``)."""
    if notices:
        cur.execute(
            Prepared("INSERT INTO applicant_notices (event_id, account_id, dossier_code, event_type, body, attempts, "
                     "next_attempt_at) SELECT e, a, d, t, b, 1, now() + make_interval(secs => %s) "
                     "FROM unnest(%s::uuid[], %s::uuid[], %s::text[], %s::text[], %s::text[]) AS x(e, a, d, t, b) "
                     "ON CONFLICT (event_id) DO NOTHING"),
            (lease_s, *([str(n[key]) for n in notices]
                        for key in ("event_id", "account_id", "dossier_code", "event_type", "body"))))


def finish_sent_notices(cur, event_ids: list[str], notified: list[tuple[str, str]]) -> None:
    """``finish_notice`` as sent for several notices, and the event of each one closed now
    appended, in one statement (``close_sent_notices``, migrations/010): ``notified`` holds,
    index by index with ``event_ids``, the stream and the log's text (``EventStore.encode``) of
    the event. A notice another sender closed meanwhile gets no event. Not a prepared statement:
    its arrays of JSON text go as ``ARRAY[...]`` literals."""
    if event_ids:
        cur.execute("SELECT close_sent_notices(%s::uuid[], %s::text[], %s::text[])",
                    ([str(i) for i in event_ids], [s for s, _ in notified], [e for _, e in notified]))


def finish_notice(cur, event_id: str, status: str) -> bool:
    """Close a pending notice; False when it was closed already (another sender got there)."""
    cur.execute(Prepared("UPDATE applicant_notices SET status = %s, sent_at = CASE WHEN %s = 'sent' THEN now() END "
                         "WHERE event_id = %s AND status = 'pending'"), (status, status, str(event_id)))
    return cur.rowcount == 1


def retry_notice_at(cur, event_id: str, delay_s: float) -> None:
    cur.execute("UPDATE applicant_notices SET next_attempt_at = now() + make_interval(secs => %s) "
                "WHERE event_id = %s AND status = 'pending'", (delay_s, str(event_id)))


# -- VNeID ---------------------------------------------------------------------------------------

def insert_vneid_state(cur, state_hash: bytes, nonce: str, code_verifier: str, redirect_uri: str,
                       expires_at: dt.datetime) -> None:
    cur.execute("INSERT INTO vneid_states (state_hash, nonce, code_verifier, redirect_uri, expires_at) "
                "VALUES (%s, %s, %s, %s, %s)", (state_hash, nonce, code_verifier, redirect_uri, expires_at))


def take_vneid_state(cur, state_hash: bytes) -> dict | None:
    """The started sign-in of this state, deleted as it is read (single use), if not expired."""
    cur.execute("DELETE FROM vneid_states WHERE state_hash = %s RETURNING nonce, code_verifier, redirect_uri, "
                "expires_at > now() AS live", (state_hash,))
    row = cur.fetchone()
    return row if row is not None and row["live"] else None


def vneid_linked_account(cur, subject: str) -> dict | None:
    cur.execute(f"SELECT {', '.join('a.' + c.strip() for c in ACCOUNT_COLUMNS.split(','))} FROM vneid_links l "
                "JOIN accounts a ON a.id = l.account_id WHERE l.subject = %s FOR UPDATE OF a", (subject,))
    return cur.fetchone()


def vneid_link_of_account(cur, account_id) -> str | None:
    cur.execute("SELECT subject FROM vneid_links WHERE account_id = %s", (str(account_id),))
    row = cur.fetchone()
    return row["subject"] if row else None


def insert_vneid_link(cur, subject: str, account_id, proof: str) -> None:
    cur.execute("INSERT INTO vneid_links (subject, account_id, proof) VALUES (%s, %s, %s)",
                (subject, str(account_id), proof))


def set_assurance_level(cur, account_id, level: int) -> None:
    """The level of the account's last VNeID sign-in, and VNeID among its ways in."""
    cur.execute("UPDATE accounts SET assurance_level = %s, methods = array(SELECT DISTINCT "
                "unnest(methods || ARRAY['vneid'])), updated_at = now() WHERE id = %s", (level, str(account_id)))


def insert_vneid_pending_link(cur, token_hash: bytes, account_id, subject: str, level: int,
                              expires_at: dt.datetime) -> None:
    cur.execute("INSERT INTO vneid_pending_links (token_hash, account_id, subject, level, expires_at) "
                "VALUES (%s, %s, %s, %s, %s)", (token_hash, str(account_id), subject, level, expires_at))


def vneid_pending_link(cur, token_hash: bytes) -> dict | None:
    """A live pending link (not used, not expired), locked."""
    cur.execute("SELECT * FROM vneid_pending_links WHERE token_hash = %s AND used_at IS NULL "
                "AND expires_at > now() FOR UPDATE", (token_hash,))
    return cur.fetchone()


def set_vneid_link_code(cur, token_hash: bytes, otp_hash: bytes, expires_at: dt.datetime) -> None:
    cur.execute("UPDATE vneid_pending_links SET otp_hash = %s, otp_expires_at = %s WHERE token_hash = %s",
                (otp_hash, expires_at, token_hash))


def count_vneid_link_failure(cur, token_hash: bytes, limit: int) -> bool:
    """One more failed proof; True when the pending link is now spent (too many)."""
    cur.execute("UPDATE vneid_pending_links SET attempts = attempts + 1, used_at = CASE WHEN attempts + 1 >= %s "
                "THEN now() END WHERE token_hash = %s RETURNING used_at IS NOT NULL AS spent", (limit, token_hash))
    row = cur.fetchone()
    return bool(row and row["spent"])


def finish_vneid_pending_link(cur, token_hash: bytes) -> None:
    cur.execute("UPDATE vneid_pending_links SET used_at = now() WHERE token_hash = %s", (token_hash,))


def remember_logout_token(cur, jti: str) -> bool:
    """False when this logout token was acted on before (a replay)."""
    cur.execute("INSERT INTO vneid_logout_tokens (jti) VALUES (%s) ON CONFLICT DO NOTHING", (jti,))
    return cur.rowcount == 1
