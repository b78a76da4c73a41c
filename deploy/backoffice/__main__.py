"""``python -m deploy.backoffice --agency <code> --gateway <url>``: run the reference back office."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from deploy.backoffice.consumer import AgencyConsumer
from deploy.backoffice.gateway import AgencyClient, DriveThrough
from deploy.backoffice.inbox import Inbox
from deploy.backoffice.jws import DeliveryKeys
from deploy.backoffice.receiver import CallbackReceiver


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.backoffice", description=__doc__)
    parser.add_argument("--agency", required=True, help="the agency code this back office serves")
    parser.add_argument("--gateway", required=True, help="gateway base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--amqp", default=os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/"))
    parser.add_argument("--callback-port", type=int, default=None,
                        help="also listen for signed callbacks on this port")
    parser.add_argument("--secret-env", default="AGENCY_SECRET",
                        help="environment variable holding the callback HMAC secret")
    parser.add_argument("--ask-supplement", action="store_true", help="request a supplement first")
    parser.add_argument("--hand-over", action="store_true",
                        help="hand a dossier on to the next agency of its liên thông chain when the delivery names one")
    parser.add_argument("--inbox-file", default=None, help="remember taken delivery ids here")
    parser.add_argument("--no-jws", action="store_true",
                        help="do not require Portal-Signature-JWS (checked against the gateway's delivery keys)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    client = AgencyClient(args.gateway, args.agency)
    drive = DriveThrough(client, ask_supplement=args.ask_supplement, hand_over=args.hand_over)
    inbox = Inbox(drive, args.inbox_file)
    keys = None if args.no_jws else DeliveryKeys(args.gateway.rstrip("/") + "/api/v1/agency/delivery-keys")
    receiver = None
    if args.callback_port is not None:
        secret = os.environ.get(args.secret_env)
        if not secret:
            print(f"{args.secret_env} is not set: cannot verify callbacks", file=sys.stderr)
            return 2
        receiver = CallbackReceiver(inbox, secret, host="0.0.0.0", port=args.callback_port,  # noqa: S104
                                    keys=keys).start()
        print(f"callbacks at {receiver.url}", flush=True)
    print(f"consuming agency.{args.agency}", flush=True)
    try:
        AgencyConsumer(args.amqp, args.agency, inbox, on_taken=client.acknowledge, keys=keys).run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if receiver is not None:
            receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
