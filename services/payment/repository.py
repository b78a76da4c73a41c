"""SQL of the payment service's write side: its projections, counters and locks, on a
transaction's cursor (rows as tuples; ``rows`` / ``one`` give dicts)."""

from __future__ import annotations

import json
from typing import Any

import psycopg2.extras


def rows(cur: Any, sql: str, args: Any = ()) -> list[dict[str, Any]]:
    cur.execute(sql, args)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def one(cur: Any, sql: str, args: Any = ()) -> dict[str, Any] | None:
    found = rows(cur, sql, args)
    return found[0] if found else None


def dict_cursor(cur: Any) -> Any:
    """A cursor with dict rows in the same transaction."""
    return cur.connection.cursor(cursor_factory=psycopg2.extras.RealDictCursor)


def remember_dossier(cur: Any, code: str, owner: str | None, agency_code: str | None, agency_name: str | None,
                     payer_name: str | None) -> None:
    cur.execute("INSERT INTO dossiers (code, owner_account_id, agency_code, agency_name, payer_name) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (code) DO UPDATE SET "
                "owner_account_id = coalesce(EXCLUDED.owner_account_id, dossiers.owner_account_id), "
                "agency_code = coalesce(EXCLUDED.agency_code, dossiers.agency_code), "
                "agency_name = coalesce(EXCLUDED.agency_name, dossiers.agency_name), "
                "payer_name = coalesce(EXCLUDED.payer_name, dossiers.payer_name), updated_at = now()",
                (code, owner, agency_code, agency_name, payer_name))


def processing_started(cur: Any, code: str) -> None:
    cur.execute("INSERT INTO dossiers (code, processing_started) VALUES (%s, true) ON CONFLICT (code) "
                "DO UPDATE SET processing_started = true, updated_at = now()", (code,))


def insert_charge(cur: Any, data: dict[str, Any]) -> bool:
    cur.execute("INSERT INTO charges (id, dossier_code, amount, fees, reason, due_date, blocking, status) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, 'open') ON CONFLICT (id) DO NOTHING",
                (str(data["charge_id"]), data["dossier_code"], data["amount"], json.dumps(data["fees"]),
                 data.get("reason"), data.get("due_date"), data["blocking"]))
    return cur.rowcount == 1


def lock_charges(cur: Any, ids: list[str]) -> list[dict[str, Any]]:
    return rows(cur, "SELECT id::text, status, fees, amount FROM charges WHERE id = ANY(%s::uuid[]) "
                     "ORDER BY id FOR UPDATE", (ids,))


def next_receipt_sequence(cur: Any, year: int) -> int:
    cur.execute("INSERT INTO receipt_counters (year, last) VALUES (%s, 1) ON CONFLICT (year) "
                "DO UPDATE SET last = receipt_counters.last + 1 RETURNING last", (year,))
    return cur.fetchone()[0]


def project(cur: Any, event_type: str, data: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    """Bring the read models in line with one event just decided (same transaction as its append)."""
    extra = extra or {}
    pid = str(data.get("payment_id")) if data.get("payment_id") else None
    if event_type == "PaymentInitiated":
        cur.execute("INSERT INTO payments (id, dossier_code, owner_account_id, reference, amount, charge_ids, "
                    "status, idempotency_key, created_at) VALUES (%s, %s, %s, %s, %s, %s::uuid[], 'pending', %s, %s)",
                    (pid, data["dossier_code"], data["owner_account_id"], data["reference"], data["amount"],
                     [str(c) for c in data["charge_ids"]], data.get("idempotency_key"), extra["now"]))
    elif event_type == "PaymentSucceeded":
        cur.execute("UPDATE payments SET status = 'succeeded', transaction_no = %s, paid_at = %s, late = %s, "
                    "updated_at = now() WHERE id = %s", (data["transaction_no"], data["paid_at"], data["late"], pid))
        if not data["late"]:
            cur.execute("UPDATE charges SET status = 'paid', paid_by = %s, updated_at = now() "
                        "WHERE id = ANY(%s::uuid[])", (pid, [str(c) for c in data["charge_ids"]]))
    elif event_type == "PaymentFailed":
        cur.execute("UPDATE payments SET status = 'failed', failure_reason = %s, updated_at = now() WHERE id = %s",
                    (data["reason"], pid))
    elif event_type == "ReceiptIssued":
        cur.execute("INSERT INTO receipts (payment_id, receipt_no, document_id, details) VALUES (%s, %s, %s, %s); "
                    "UPDATE payments SET receipt_no = %s, receipt_document_id = %s WHERE id = %s",
                    (pid, data["receipt_no"], str(data["document_id"]), json.dumps(extra["receipt"], default=str),
                     data["receipt_no"], str(data["document_id"]), pid))
    elif event_type == "RefundRequested":
        cur.execute("UPDATE payments SET refund_status = 'requested', refund_reason = %s, updated_at = now() "
                    "WHERE id = %s", (data["reason"], pid))
    elif event_type == "RefundSucceeded":
        cur.execute("UPDATE payments SET status = 'refunded', refund_status = 'succeeded', updated_at = now() "
                    "WHERE id = %s", (pid,))
    elif event_type == "PaymentExpired":
        cur.execute("UPDATE charges SET status = 'expired', updated_at = now() WHERE id = %s AND status = 'open'",
                    (str(data["charge_id"]),))
