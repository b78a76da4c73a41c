"""Comparing a day's settlement file with the payments recorded here (pure).

Each disagreement is one mismatch: paid there and not here, paid here and not there, or
both with different amounts. Refund lines of the file are netted into their payment.
"""

from __future__ import annotations

from typing import Any


def compare(there: list[dict[str, Any]], here: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    """(matched count, mismatches) for the file's lines ``there`` ({reference, kind, amount}) and
    our succeeded payments ``here`` ({reference, amount, payment_id}) of the same day."""
    paid_there: dict[str, int] = {}
    for line in there:
        if line["kind"] == "payment":
            paid_there[line["reference"]] = paid_there.get(line["reference"], 0) + int(line["amount"])
    ours = {p["reference"]: p for p in here}
    matched = 0
    mismatches: list[dict[str, Any]] = []
    for reference in sorted(set(paid_there) | set(ours)):
        mine = ours.get(reference)
        theirs = paid_there.get(reference)
        if mine is None:
            mismatches.append({"kind": "paid_there_not_here", "reference": reference, "payment_id": None,
                               "amount_here": None, "amount_there": theirs})
        elif theirs is None:
            mismatches.append({"kind": "paid_here_not_there", "reference": reference,
                               "payment_id": mine["payment_id"], "amount_here": mine["amount"], "amount_there": None})
        elif int(mine["amount"]) != theirs:
            mismatches.append({"kind": "amount_differs", "reference": reference, "payment_id": mine["payment_id"],
                               "amount_here": int(mine["amount"]), "amount_there": theirs})
        else:
            matched += 1
    return matched, mismatches
