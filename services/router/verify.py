"""``python -m services.router.verify FILE``: check a saved delivery against the published keys,
offline, as any third party can.

``FILE`` holds the delivery as received: its header lines (``Name: value``; a request line
first is allowed), an empty line, then the body bytes exactly as they came (``-`` reads
standard input). The keys come from ``--jwks``: a URL (default: the gateway's
``/api/v1/agency/delivery-keys`` at ``PORTAL_GATEWAY_URL``, else http://127.0.0.1:8000) or a
file holding the JWKS. Exit status 0 when the ``Portal-Signature-JWS`` header verifies over
the body with one of the keys (and the body is a CloudEvent 1.0), 1 when it does not, 2 when
the file cannot be read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from pathlib import Path
from typing import Any

from services.router.delivery_keys import HEADER, verify_detached


def parse_delivery(raw: bytes) -> tuple[dict[str, str], bytes]:
    """Headers (names lower-cased) and body of a saved HTTP delivery."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, found, body = raw.partition(separator)
        if found:
            break
    else:
        raise ValueError("no empty line between the headers and the body")
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").splitlines():
        if ":" not in line or line.split(":", 1)[0].strip().count(" "):
            continue  # a request or status line
        name, value = line.split(":", 1)
        headers[name.strip().lower()] = value.strip()
    return headers, body


def load_jwks(source: str) -> dict[str, Any]:
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=10) as resp:  # noqa: S310 - the operator's URL
            return json.loads(resp.read())
    return json.loads(Path(source).read_text(encoding="utf-8"))


def verify(raw: bytes, jwks: dict[str, Any]) -> dict[str, Any]:
    """What verified: the key id and the CloudEvent's id, type and subject; ``ValueError`` if not."""
    headers, body = parse_delivery(raw)
    signature = headers.get(HEADER.lower())
    if not signature:
        raise ValueError(f"the delivery has no {HEADER} header")
    kid = verify_detached(signature, body, jwks)
    try:
        event = json.loads(body)
    except ValueError:
        raise ValueError("the signature verifies but the body is not JSON") from None
    if not isinstance(event, dict) or event.get("specversion") != "1.0" or not event.get("id"):
        raise ValueError("the signature verifies but the body is not a CloudEvent 1.0")
    return {"kid": kid, "id": event["id"], "type": event.get("type"), "subject": event.get("subject")}


def main(argv: list[str] | None = None) -> int:
    default = os.environ.get("PORTAL_GATEWAY_URL", "http://127.0.0.1:8000").rstrip("/") + \
        "/api/v1/agency/delivery-keys"
    parser = argparse.ArgumentParser(prog="python -m services.router.verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="the saved delivery: headers, an empty line, the body (- for stdin)")
    parser.add_argument("--jwks", default=default, help=f"URL or file of the key set (default {default})")
    args = parser.parse_args(argv)
    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
        jwks = load_jwks(args.jwks)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        result = verify(raw, jwks)
    except ValueError as exc:
        print(f"NOT VERIFIED: {exc}")
        return 1
    print(f"VERIFIED: signed by {result['kid']}; event {result['id']} {result['type']} {result['subject'] or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
