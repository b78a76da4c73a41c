"""Sessions (pure): the event that ends some, and what the gateway must refuse.

A session is a refresh-token family; its access tokens carry its id as ``sid``. Every way a
session ends publishes ``SignedOut`` naming the ended sessions; a password change, a disabled
staff account and a revoked agency system end every access token issued before them.
"""

from __future__ import annotations

from collections.abc import Iterable

from portal_common.eventstore.events import NewEvent


def signed_out(account_id, reason: str, session_ids: Iterable, all_sessions: bool = False) -> NewEvent:
    """The ``SignedOut`` event naming the ended sessions (the gateway refuses their access tokens)."""
    return NewEvent("SignedOut", {"account_id": str(account_id), "reason": reason,
                                  "session_ids": sorted({str(s) for s in session_ids}),
                                  "all_sessions": all_sessions})


def revocations(sessions: list[dict], disabled_staff: list[dict], revoked_clients: list[dict],
                access_ttl_s: int) -> dict:
    """The sessions and accounts whose access tokens the gateway refuses, from the rows revoked lately.

    An account's ``before`` is the second before which its tokens are refused: a password change
    and a disable end every token issued before their second; a revoked agency system can get no
    new token, so the second it was revoked in is refused too."""
    accounts: dict[str, float] = {}

    def refuse_before(account_id, before: float) -> None:
        accounts[str(account_id)] = max(before, accounts.get(str(account_id), 0.0))

    for row in sessions:
        if row["password"]:
            refuse_before(row["account_id"], float(int(row["revoked_at"].timestamp())))
    for row in disabled_staff:
        refuse_before(row["account_id"], float(int(row["disabled_at"].timestamp())))
    for row in revoked_clients:
        accounts[str(row["account_id"])] = float(int(row["revoked_at"].timestamp()) + 1)
    return {
        "ttl": access_ttl_s,
        "sessions": [{"session_id": str(r["family"]), "account_id": str(r["account_id"]),
                      "revoked_at": r["revoked_at"].timestamp()} for r in sessions],
        "accounts": [{"account_id": a, "before": b} for a, b in sorted(accounts.items())],
    }
