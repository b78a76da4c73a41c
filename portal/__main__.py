"""``python -m portal``: the citizen portal on ``PORTAL_HOST:PORTAL_PORT``, served by waitress."""

from __future__ import annotations

import gc
import logging
import sys

from waitress import serve

from portal.app import create_app
from portal.config import Settings


def main() -> int:
    settings = Settings()
    app = create_app(settings)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("portal.access").setLevel(logging.INFO)
    # Everything loaded so far (Flask, Jinja, the compiled catalogue) lives as long as the
    # process: keep it out of the collector's full passes, which otherwise stall a page now
    # and then for milliseconds.
    gc.freeze()
    print(f"portal on http://{settings.host}:{settings.port}/ (gateway {settings.gateway_url})", flush=True)
    serve(app, host=settings.host, port=settings.port, threads=settings.threads, ident="portal",
          max_request_body_size=app.config["MAX_CONTENT_LENGTH"] + 1024 * 1024, clear_untrusted_proxy_headers=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
