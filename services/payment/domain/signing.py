"""The platform's checksum: HMAC-SHA512 over the sorted fields with the merchant secret.

As the national platform and VNPay-style gateways do: every ``vnp_`` field except the hash
itself, sorted by name, URL-encoded as ``name=value`` joined by ``&``, then HMAC-SHA512 with
the merchant secret, hex. A notification verifies under the current secret or, while the
merchant switches, the previous one.

The merchant API (``querydr``, ``refund``) signs differently, as those gateways document it:
HMAC-SHA512 (hex) over the values of a fixed list of fields, in that order, joined by ``|``
(a missing field is an empty value); each response is signed the same way over its own list.
A day's settlement file is signed over its header and lines (``settlement_text``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import quote_plus

HASH_FIELD = "vnp_SecureHash"
_EXCLUDED = {HASH_FIELD, "vnp_SecureHashType"}


def canonical(fields: Mapping[str, str]) -> str:
    """The signed text of ``fields`` (the hash fields left out)."""
    return "&".join(f"{k}={quote_plus(str(v))}" for k, v in sorted(fields.items())
                    if k.startswith("vnp_") and k not in _EXCLUDED and v not in (None, ""))


def sign(fields: Mapping[str, str], secret: str) -> str:
    return hmac.new(secret.encode(), canonical(fields).encode(), hashlib.sha512).hexdigest()


def signed(fields: Mapping[str, str], secret: str) -> dict[str, str]:
    """``fields`` with their checksum added."""
    return {**fields, HASH_FIELD: sign(fields, secret)}


def verify(fields: Mapping[str, str], secrets: Iterable[str]) -> bool:
    """Whether the checksum is right under one of ``secrets`` (constant-time compare)."""
    given = str(fields.get(HASH_FIELD) or "").lower()
    if not given:
        return False
    ok = False
    for secret in secrets:
        if secret:
            ok |= hmac.compare_digest(sign(fields, secret), given)
    return ok


# -- the merchant API: values in a documented order, joined by "|" ----------------------------

QUERYDR_REQUEST = ("vnp_RequestId", "vnp_Version", "vnp_Command", "vnp_TmnCode", "vnp_TxnRef",
                   "vnp_TransactionDate", "vnp_CreateDate", "vnp_IpAddr", "vnp_OrderInfo")
QUERYDR_RESPONSE = ("vnp_ResponseId", "vnp_Command", "vnp_ResponseCode", "vnp_Message", "vnp_TmnCode", "vnp_TxnRef",
                    "vnp_Amount", "vnp_BankCode", "vnp_PayDate", "vnp_TransactionNo", "vnp_TransactionType",
                    "vnp_TransactionStatus", "vnp_OrderInfo", "vnp_PromotionCode", "vnp_PromotionAmount")
REFUND_REQUEST = ("vnp_RequestId", "vnp_Version", "vnp_Command", "vnp_TmnCode", "vnp_TransactionType", "vnp_TxnRef",
                  "vnp_Amount", "vnp_TransactionNo", "vnp_TransactionDate", "vnp_CreateBy", "vnp_CreateDate",
                  "vnp_IpAddr", "vnp_OrderInfo")
REFUND_RESPONSE = ("vnp_ResponseId", "vnp_Command", "vnp_ResponseCode", "vnp_Message", "vnp_TmnCode", "vnp_TxnRef",
                   "vnp_Amount", "vnp_BankCode", "vnp_PayDate", "vnp_TransactionNo", "vnp_TransactionType",
                   "vnp_TransactionStatus", "vnp_OrderInfo")
#: command -> (the request's signed fields, the response's)
API_ORDERS = {"querydr": (QUERYDR_REQUEST, QUERYDR_RESPONSE), "refund": (REFUND_REQUEST, REFUND_RESPONSE)}


def pipe_text(fields: Mapping[str, object], order: Iterable[str]) -> str:
    return "|".join("" if fields.get(k) is None else str(fields.get(k)) for k in order)


def pipe_sign(fields: Mapping[str, object], order: Iterable[str], secret: str) -> str:
    return hmac.new(secret.encode(), pipe_text(fields, order).encode(), hashlib.sha512).hexdigest()


def pipe_signed(fields: Mapping[str, object], order: Iterable[str], secret: str) -> dict[str, object]:
    """``fields`` with their checksum over ``order`` added."""
    return {**fields, HASH_FIELD: pipe_sign(fields, order, secret)}


def pipe_verify(fields: Mapping[str, object], order: Iterable[str], secrets: Iterable[str]) -> bool:
    """Whether ``fields`` carry the right checksum over ``order`` under one of ``secrets``."""
    given = str(fields.get(HASH_FIELD) or "").lower()
    if not given:
        return False
    order = tuple(order)
    ok = False
    for secret in secrets:
        if secret:
            ok |= hmac.compare_digest(pipe_sign(fields, order, secret), given)
    return ok


# -- the settlement file ---------------------------------------------------------------------

SETTLEMENT_LINE = ("reference", "transaction_no", "kind", "amount", "at")


def settlement_text(day: str, merchant: str, lines: Iterable[Mapping[str, object]]) -> str:
    """The signed text of a day's settlement file: ``day|merchant`` then one line per entry."""
    return "\n".join([f"{day}|{merchant}", *(pipe_text(line, SETTLEMENT_LINE) for line in lines)])


def settlement_sign(day: str, merchant: str, lines: Iterable[Mapping[str, object]], secret: str) -> str:
    return hmac.new(secret.encode(), settlement_text(day, merchant, lines).encode(), hashlib.sha512).hexdigest()


def settlement_verify(day: str, merchant: str, lines: list[Mapping[str, object]], given: str,
                      secrets: Iterable[str]) -> bool:
    given = str(given or "").lower()
    ok = False
    for secret in secrets:
        if secret and given:
            ok |= hmac.compare_digest(settlement_sign(day, merchant, lines, secret), given)
    return ok
