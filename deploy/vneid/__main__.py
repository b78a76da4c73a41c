"""``python -m deploy.vneid``: run the local VNeID stand-in (an OpenID Connect provider).

Configuration (the same variables the identity service reads, so both agree):
``VNEID_STANDIN_PORT`` (8090), ``VNEID_ISSUER`` (``http://127.0.0.1:<port>``), ``VNEID_CLIENT_ID``,
``VNEID_CLIENT_SECRET``, ``VNEID_REDIRECT_URIS`` (comma-separated) and
``VNEID_BACKCHANNEL_LOGOUT_URI`` (where ``POST /dev/logout`` sends its logout token).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from waitress import serve

from deploy.vneid.provider import StandInConfig, create_app
from portal_common import config

DEFAULT_PORT = 8090
DEFAULT_CLIENT_ID = "portal-local"
DEFAULT_CLIENT_SECRET = "local-vneid-secret"  # the stand-in's own test client; never a real secret
DEFAULT_REDIRECT_URIS = "http://127.0.0.1:8080/dang-nhap/vneid"


def settings(port: int | None = None) -> StandInConfig:
    port = port or config.env_int("VNEID_STANDIN_PORT", DEFAULT_PORT)
    return StandInConfig(
        issuer=(config.env("VNEID_ISSUER", None) or f"http://127.0.0.1:{port}").rstrip("/"),
        client_id=config.env("VNEID_CLIENT_ID", DEFAULT_CLIENT_ID) or DEFAULT_CLIENT_ID,
        client_secret=config.env("VNEID_CLIENT_SECRET", DEFAULT_CLIENT_SECRET) or DEFAULT_CLIENT_SECRET,
        redirect_uris=tuple(u.strip() for u in (config.env("VNEID_REDIRECT_URIS", DEFAULT_REDIRECT_URIS)
                                                or "").split(",") if u.strip()),
        backchannel_logout_uri=config.env("VNEID_BACKCHANNEL_LOGOUT_URI", None) or None,
        client_public_key_pem=_client_key(),
    )


def _client_key() -> str | None:
    """The client's key for ``private_key_jwt``: ``VNEID_CLIENT_PUBLIC_KEY_FILE``, or the public part
    of the ``VNEID_PRIVATE_KEY_FILE`` identity signs with (the same machine, locally)."""
    path = config.env("VNEID_CLIENT_PUBLIC_KEY_FILE", None) or config.env("VNEID_PRIVATE_KEY_FILE", None)
    return Path(path).read_text() if path else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.vneid", description=__doc__)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = settings(args.port)
    port = args.port or config.env_int("VNEID_STANDIN_PORT", DEFAULT_PORT)
    print(f"VNeID stand-in at {cfg.issuer} (client {cfg.client_id})", flush=True)
    serve(create_app(cfg), host="127.0.0.1", port=port, threads=8, ident="vneid-stand-in")
    return 0


if __name__ == "__main__":
    sys.exit(main())
