"""The access tokens identity has revoked, refused by the gateway without asking identity.

Access tokens are verified locally, so one stays valid until it expires unless the gateway
learns its session (or account) ended. Identity names them in its events (``SignedOut`` v2:
the ended sessions, and ``all_sessions`` for a sign-out everywhere; ``PasswordChanged`` and
``StaffAccountDisabled``: every token issued before it; ``AgencySystemRevoked``: every token of
that system); each gateway process receives them on a queue of its own (a ``BROADCAST``
handler) and, when it starts, reads the recent ones over one RPC (``identity.revocations``).

An entry is kept for one access-token lifetime (and a margin) after its revocation: after
that, every token it refuses has expired anyway. The list is in memory and small (the
revocations of the last ten minutes).

Rules: a token whose ``sid`` claim names a revoked session is refused; so is a token of an
account revoked "before T" whose ``iat`` is earlier than T (T is a whole second: for a
password change or a sign-out everywhere the second it happened in, whose own tokens the
sessions list covers; for a disabled staff account the second it happened in too, so that a
sign-in after a quick reinstatement works; for an agency system the second after, as it can get
no new token).
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections.abc import Callable

DEFAULT_TOKEN_TTL_S = 600
MARGIN_S = 65  # the verifier's leeway, clock skew between services, event delay


def _epoch(value) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.timestamp()
    return None


class RevocationList:
    """Revoked sessions and accounts, each forgotten once its tokens have all expired."""

    def __init__(self, token_ttl_s: float = DEFAULT_TOKEN_TTL_S, clock: Callable[[], float] = time.time):
        self.token_ttl_s = float(token_ttl_s)
        self._clock = clock
        self._sessions: dict[str, float] = {}  # session id -> forget at
        self._accounts: dict[str, tuple[float, float]] = {}  # account id -> (refuse iat before, forget at)
        self._lock = threading.Lock()
        self._next_purge = 0.0

    def _forget_at(self, revoked_at: float | None) -> float:
        start = revoked_at if revoked_at is not None else self._clock()
        return start + self.token_ttl_s + MARGIN_S

    # -- recording -------------------------------------------------------------------

    def revoke_session(self, session_id: str, revoked_at: float | None = None) -> None:
        forget = self._forget_at(revoked_at)
        if forget <= self._clock():
            return
        with self._lock:
            self._sessions[str(session_id)] = max(forget, self._sessions.get(str(session_id), 0.0))
        self._purge()

    def revoke_account(self, account_id: str, before: float, revoked_at: float | None = None) -> None:
        """Refuse the account's tokens issued (``iat``) before ``before`` (epoch seconds)."""
        forget = self._forget_at(revoked_at if revoked_at is not None else before)
        if forget <= self._clock():
            return
        with self._lock:
            old_before, old_forget = self._accounts.get(str(account_id), (0.0, 0.0))
            self._accounts[str(account_id)] = (max(before, old_before), max(forget, old_forget))
        self._purge()

    def load(self, snapshot: dict) -> None:
        """Merge identity's ``revocations()`` answer."""
        ttl = snapshot.get("ttl")
        if isinstance(ttl, int | float) and ttl > self.token_ttl_s:
            self.token_ttl_s = float(ttl)
        for item in snapshot.get("sessions") or []:
            if item.get("session_id"):
                self.revoke_session(item["session_id"], _epoch(item.get("revoked_at")))
        for item in snapshot.get("accounts") or []:
            before = _epoch(item.get("before"))
            if item.get("account_id") and before is not None:
                self.revoke_account(item["account_id"], before)

    def apply_event(self, envelope: dict) -> bool:
        """Record what one of identity's events revokes; False when it revokes nothing."""
        if not isinstance(envelope, dict) or not isinstance(envelope.get("data"), dict):
            return False
        kind, data = envelope.get("event_type"), envelope["data"]
        at = _epoch(envelope.get("occurred_at"))
        account = data.get("account_id")
        sessions = [s for s in data.get("session_ids") or [] if isinstance(s, str) and s]
        for session in sessions:
            self.revoke_session(session, at)
        if not account or at is None:
            return bool(sessions)
        if kind in ("PasswordChanged", "StaffAccountDisabled") or (kind == "SignedOut" and data.get("all_sessions")):
            self.revoke_account(account, float(math.floor(at)), at)
            return True
        if kind == "AgencySystemRevoked":
            self.revoke_account(account, float(math.floor(at) + 1), at)
            return True
        return bool(sessions)

    # -- checking --------------------------------------------------------------------

    def is_revoked(self, claims: dict) -> bool:
        now = self._clock()
        sid = claims.get("sid")
        if sid is not None:
            forget = self._sessions.get(str(sid))
            if forget is not None and forget > now:
                return True
        entry = self._accounts.get(str(claims.get("sub")))
        if entry is not None and entry[1] > now:
            iat = claims.get("iat")
            if not isinstance(iat, int | float) or iat < entry[0]:
                return True
        return False

    def _purge(self) -> None:
        now = self._clock()
        if now < self._next_purge:
            return
        with self._lock:
            self._next_purge = now + 30
            self._sessions = {k: v for k, v in self._sessions.items() if v > now}
            self._accounts = {k: v for k, v in self._accounts.items() if v[1] > now}

    def __len__(self) -> int:
        now = self._clock()
        return (sum(1 for v in self._sessions.values() if v > now)
                + sum(1 for v in self._accounts.values() if v[1] > now))
