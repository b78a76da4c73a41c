"""``python -m services.identity.admin``: what an installation needs before anyone can sign
in as staff.

``create-staff --username U --role operator --full-name N --phone P [--agency-code A]``
creates a staff account directly in identity's schema (the first operator cannot be created
through the API, which needs an operator); the activation code goes to the phone through the
configured SMS adapter, and the person sets their password with
``POST /api/v1/auth/staff/activate``. ``rotate-key`` makes a new token-signing key.
``add-crl --file path.crl [--issuer ca.pem]`` imports a CA's certificate revocation list (PEM
or DER); ``--issuer`` names the intermediate CA that signed it, the first time only.
``disable-staff --username U --reason R`` (and ``reinstate-staff``) is the way in when no
operator can sign in: the same rules and events as ``POST /api/v1/staff/{id}/disable``.
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path

from portal_common import config
from portal_common.db import Database
from portal_common.errors import NotFound, ServiceError
from portal_common.eventstore import EventContext, EventStore
from portal_common.eventstore.events import Actor
from portal_common.migrations import migrate
from services.identity import adapters
from services.identity import repository as repo
from services.identity import settings as identity_settings
from services.identity.application import keys, pki, staff
from services.identity.domain.accounts import STAFF_ROLES, staff_identifier


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.identity.admin")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create-staff", help="create a staff account waiting for activation")
    create.add_argument("--username", required=True)
    create.add_argument("--role", required=True, choices=STAFF_ROLES)
    create.add_argument("--full-name", required=True)
    create.add_argument("--phone", required=True)
    create.add_argument("--agency-code", default=None)
    sub.add_parser("rotate-key", help="a new token-signing key (published now, signing after the delay)")
    crl = sub.add_parser("add-crl", help="import a certificate revocation list (PEM or DER)")
    crl.add_argument("--file", required=True, type=Path)
    crl.add_argument("--issuer", default=None, type=Path,
                     help="PEM of the intermediate CA that signed it (and its chain), when it is not a trusted CA")
    for name, what in (("disable-staff", "disable a staff account: sessions end, tokens refused"),
                       ("reinstate-staff", "let a disabled staff account sign in again")):
        status = sub.add_parser(name, help=what)
        status.add_argument("--username", required=True)
        status.add_argument("--reason", required=True)
    args = parser.parse_args(argv)
    dsn = config.database_url("identity")
    migrate(dsn, "identity", "services.identity")
    db = Database(dsn, "identity", size=2, application_name="identity-admin")
    try:
        if args.command == "rotate-key":
            key_settings = identity_settings.load_keys()
            keys.ensure_key(db, key_settings)
            print(f"new signing key {keys.rotate(db, key_settings)}")
            return 0
        settings = identity_settings.load()
        ctx = EventContext(actor=Actor("operator", "identity-admin"))
        if args.command == "add-crl":
            return _add_crl(db, settings, args.file, args.issuer, ctx)
        if args.command in ("disable-staff", "reinstate-staff"):
            return _set_staff_status(db, args.command, args.username, args.reason, ctx)
        body = {"username": args.username, "role": args.role, "full_name": args.full_name, "phone": args.phone,
                "agency_code": args.agency_code}
        try:
            out = staff.create(db, EventStore(db), adapters.build(settings, db), settings, body, ctx)
        except ServiceError as exc:
            print(f"refused: {exc.code}: {exc.message}", file=sys.stderr)
            return 1
        print(f"created {out['role']} {out['username']} ({out['account_id']}); activation code sent to "
              f"{out['activation_code_sent_to']}")
        return 0
    finally:
        db.close()


def _crl_text(raw: bytes) -> str:
    """PEM stays text; DER travels as base64 (what ``add_crl`` takes)."""
    if raw.lstrip().startswith(b"-----BEGIN"):
        return raw.decode("ascii", errors="replace")
    return base64.b64encode(raw).decode()


def _add_crl(db: Database, settings, file: Path, issuer: Path | None, ctx: EventContext) -> int:
    try:
        text = _crl_text(file.read_bytes())
        issuer_pem = issuer.read_text() if issuer else None
    except OSError as exc:
        print(f"cannot read: {exc}", file=sys.stderr)
        return 2
    try:
        out = pki.add_crl(db, EventStore(db), settings, text, issuer_pem, ctx)
    except ServiceError as exc:
        print(f"refused: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    print(f"{out['status']} CRL of {out['issuer']} (number {out['crl_number']}, {out['revoked_count']} revoked, "
          f"next update {out['next_update']})")
    return 0


def _set_staff_status(db: Database, command: str, username: str, reason: str, ctx: EventContext) -> int:
    with db.transaction() as cur:
        account = repo.account_by_identifier(cur, staff_identifier(username))
    change = staff.disable if command == "disable-staff" else staff.reinstate
    try:
        if account is None:
            raise NotFound("staff_not_found", "No staff account has this username.")
        out = change(db, EventStore(db), str(account["id"]), {"reason": reason}, ctx)
    except ServiceError as exc:
        print(f"refused: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    print(f"{out['username']} is now {out['status']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
