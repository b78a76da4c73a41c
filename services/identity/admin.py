"""``python -m services.identity.admin``: what an installation needs before anyone can sign
in as staff.

``create-staff --username U --role operator --full-name N --phone P [--agency-code A]``
creates a staff account directly in identity's schema (the first operator cannot be created
through the API, which needs an operator); the activation code goes to the phone through the
configured SMS adapter, and the person sets their password with
``POST /api/v1/auth/staff/activate``. ``rotate-key`` makes a new token-signing key.
"""

from __future__ import annotations

import argparse
import sys

from portal_common import config
from portal_common.db import Database
from portal_common.errors import ServiceError
from portal_common.eventstore import EventContext, EventStore
from portal_common.eventstore.events import Actor
from portal_common.migrations import migrate
from services.identity import adapters, keys, staff_accounts
from services.identity import settings as identity_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.identity.admin")
    sub = parser.add_subparsers(dest="command", required=True)
    staff = sub.add_parser("create-staff", help="create a staff account waiting for activation")
    staff.add_argument("--username", required=True)
    staff.add_argument("--role", required=True, choices=staff_accounts.STAFF_ROLES)
    staff.add_argument("--full-name", required=True)
    staff.add_argument("--phone", required=True)
    staff.add_argument("--agency-code", default=None)
    sub.add_parser("rotate-key", help="a new token-signing key (published now, signing after the delay)")
    args = parser.parse_args(argv)
    dsn = config.database_url("identity")
    migrate(dsn, "identity", "services.identity")
    db = Database(dsn, "identity", size=2, application_name="identity-admin")
    try:
        if args.command == "rotate-key":
            keys.ensure_key(db)
            print(f"new signing key {keys.rotate(db)}")
            return 0
        settings = identity_settings.load()
        ctx = EventContext(actor=Actor("operator", "identity-admin"))
        body = {"username": args.username, "role": args.role, "full_name": args.full_name, "phone": args.phone,
                "agency_code": args.agency_code}
        try:
            out = staff_accounts.create(db, EventStore(db), adapters.build(settings, db), settings, body, ctx)
        except ServiceError as exc:
            print(f"refused: {exc.code}: {exc.message}", file=sys.stderr)
            return 1
        print(f"created {out['role']} {out['username']} ({out['account_id']}); activation code sent to "
              f"{out['activation_code_sent_to']}")
        return 0
    finally:
        db.close()


if __name__ == "__main__":
    sys.exit(main())
