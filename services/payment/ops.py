"""The payment service's operator surface, registered with ``portal_common.registry``.

Commands (over RPC to the running service, so every change is its own event):
``payment-reconcile --date D`` compares the platform's settlement file of a day with our
payments and prints every mismatch; ``payment-mismatches [--date D]`` lists those found;
``payment-refund <payment_id> --reason R`` refunds a payment; ``payment-expire [--as-of D]``
expires the charges due before a day. Metrics: payments by status, open charges, settlement
mismatches by kind. Also runnable alone: ``python -m services.payment.ops payment-mismatches``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from portal_common import config, registry
from portal_common.contracts.payment import MISMATCH_KINDS, PAYMENT_STATUSES
from portal_common.entrypoints import TransientClusterRpcProxy
from portal_common.errors import ServiceError
from portal_common.logs import code_arguments
from portal_common.ops import rpc_command_adder

OPERATOR = {"actor": {"kind": "operator", "id": "portal-ops"}}


def _run(args: argparse.Namespace, call) -> int:
    uri = args.amqp_uri or config.amqp_uri("payment")
    try:
        with TransientClusterRpcProxy({"AMQP_URI": uri}, timeout=args.timeout) as proxy:
            result = call(proxy.payment)
    except ServiceError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    _print(result, args.json)
    return 0


def _print(result: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
        return
    rows = result.get("items", []) if isinstance(result, dict) else result
    if isinstance(result, dict) and "matched" in result:
        print(f"date {result['date']}: matched {result['matched']}, mismatches {result['mismatches']}")
    if isinstance(rows, list):
        for row in rows:
            print("  ".join(str(row.get(k, "")) for k in ("day", "kind", "reference", "payment_id", "amount_here",
                                                          "amount_there") if k in row)
                  if isinstance(row, dict) else str(row))
        if not rows:
            print("(none)")
    else:
        print(json.dumps(result, ensure_ascii=False, default=str))


def register(subparsers: argparse._SubParsersAction) -> None:
    add = rpc_command_adder(subparsers, "payment", 60.0)

    p = add("payment-reconcile", "compare a day's settlement file with our payments",
            lambda a: _run(a, lambda s: s.reconcile(a.date)))
    p.add_argument("--date", required=True, help="YYYY-MM-DD (local day)")
    p = add("payment-mismatches", "settlement mismatches found (newest first)",
            lambda a: _run(a, lambda s: s.mismatches(a.date)))
    p.add_argument("--date", default=None)
    p = add("payment-refund", "refund a succeeded payment", lambda a: _run(a, lambda s: s.refund(
        a.payment_id, a.reason, OPERATOR)))
    p.add_argument("payment_id")
    p.add_argument("--reason", required=True)
    p = add("payment-expire", "expire the charges due before a day (default today)",
            lambda a: _run(a, lambda s: s.expire_due(a.as_of)))
    p.add_argument("--as-of", default=None)


GAUGES = (
    registry.Gauge("portal_payments", "Payments by status", ("status",)),
    registry.Gauge("portal_payment_charges_open", "Charges of dossiers not paid yet"),
    registry.Gauge("portal_payment_settlement_mismatches", "Settlement mismatches found, by kind", ("kind",)),
)


def readings(cur: Any, schema: str) -> list[registry.Reading]:
    cur.execute("SELECT to_regclass(%s)", (f"{schema}.payments",))
    if not cur.fetchone()[0]:
        return []
    cur.execute(f"SELECT status, count(*) FROM {schema}.payments GROUP BY status")
    counts = dict(cur.fetchall())
    out = [registry.Reading("portal_payments", (s,), counts.get(s, 0)) for s in PAYMENT_STATUSES]
    cur.execute(f"SELECT count(*) FROM {schema}.charges WHERE status = 'open'")
    out.append(registry.Reading("portal_payment_charges_open", (), cur.fetchone()[0]))
    cur.execute(f"SELECT kind, count(*) FROM {schema}.settlement_mismatches GROUP BY kind")
    kinds = dict(cur.fetchall())
    out += [registry.Reading("portal_payment_settlement_mismatches", (k,), kinds.get(k, 0)) for k in MISMATCH_KINDS]
    return out


registration = registry.Registration(
    service="payment", commands=register, gauges=GAUGES, readings=readings, log_fields=code_arguments,
    metrics_port=9105,
)


def main(argv: list[str] | None = None) -> int:
    return registry.run_commands(register, "python -m services.payment.ops", argv)


if __name__ == "__main__":
    sys.exit(main())
