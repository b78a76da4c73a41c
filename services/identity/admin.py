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
from portal_common.errors import ServiceError
from portal_common.eventstore import EventContext, EventStore
from portal_common.eventstore.events import Actor
from portal_common.migrations import migrate
from services.identity import adapters
from services.identity import settings as identity_settings
from services.identity.application import keys, pki, staff
from services.identity.domain.accounts import STAFF_ROLES


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
        print(_run(db, args))
        return 0
    except ServiceError as exc:
        print(f"refused: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except Unreadable as exc:
        print(f"cannot read: {exc}", file=sys.stderr)
        return 2
    finally:
        db.close()


class Unreadable(Exception):
    """A file named on the command line cannot be read."""


def _run(db: Database, args: argparse.Namespace) -> str:
    """Carry out one command through the application layer; what to tell the operator."""
    if args.command == "rotate-key":
        key_settings = identity_settings.load_keys()
        keys.ensure_key(db, key_settings)
        return f"new signing key {keys.rotate(db, key_settings)}"
    settings = identity_settings.load()
    store, ctx = EventStore(db), EventContext(actor=Actor("operator", "identity-admin"))
    if args.command == "add-crl":
        text, issuer_pem = _crl_files(args.file, args.issuer)
        out = pki.add_crl(db, store, settings, text, issuer_pem, ctx)
        return (f"{out['status']} CRL of {out['issuer']} (number {out['crl_number']}, {out['revoked_count']} "
                f"revoked, next update {out['next_update']})")
    if args.command in ("disable-staff", "reinstate-staff"):
        change = staff.disable if args.command == "disable-staff" else staff.reinstate
        out = change(db, store, staff.id_of(db, args.username), {"reason": args.reason}, ctx)
        return f"{out['username']} is now {out['status']}"
    body = {"username": args.username, "role": args.role, "full_name": args.full_name, "phone": args.phone,
            "agency_code": args.agency_code}
    out = staff.create(db, store, adapters.build(settings, db), settings, body, ctx)
    return (f"created {out['role']} {out['username']} ({out['account_id']}); activation code sent to "
            f"{out['activation_code_sent_to']}")


def _crl_files(file: Path, issuer: Path | None) -> tuple[str, str | None]:
    """The CRL as ``add_crl`` takes it (PEM stays text; DER travels as base64) and the issuer's PEM."""
    try:
        raw, issuer_pem = file.read_bytes(), issuer.read_text() if issuer else None
    except OSError as exc:
        raise Unreadable(str(exc)) from None
    if raw.lstrip().startswith(b"-----BEGIN"):
        return raw.decode("ascii", errors="replace"), issuer_pem
    return base64.b64encode(raw).decode(), issuer_pem


if __name__ == "__main__":
    sys.exit(main())
