"""The signed-callback side: a small HTTP server that verifies each POST and hands it to the
inbox. 204 when taken (or already taken), 401 for a bad signature, 503 when the handler
fails so the router retries later."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from deploy.backoffice import signature
from deploy.backoffice.inbox import Inbox
from deploy.backoffice.jws import HEADER as JWS_HEADER
from deploy.backoffice.jws import DeliveryKeys, JwsError

log = logging.getLogger(__name__)
MAX_BODY = 10 * 1024 * 1024


class CallbackReceiver:
    def __init__(self, inbox: Inbox, secret: str, host: str = "127.0.0.1", port: int = 0,
                 window_s: float = signature.DEFAULT_WINDOW_S, keys: DeliveryKeys | None = None):
        self.keys = keys  # with keys, the Portal-Signature-JWS must verify too
        self.inbox = inbox
        self.secret = secret
        self.window_s = window_s
        self.rejected = 0
        self.server = ThreadingHTTPServer((host, port), self._handler_class())
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/deliveries"

    def _handler_class(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):  # quiet: the back office logs what matters
                log.debug(fmt, *args)

            def _reply(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                raw_length = self.headers.get("Content-Length") or "0"
                length = int(raw_length) if raw_length.isdigit() else 0
                if length <= 0 or length > MAX_BODY:
                    self._reply(413 if length > MAX_BODY else 400)
                    return
                body = self.rfile.read(length)
                try:
                    signature.verify(receiver.secret, self.headers.get(signature.TIMESTAMP_HEADER),
                                     self.headers.get(signature.SIGNATURE_HEADER), body,
                                     window_s=receiver.window_s)
                    if receiver.keys is not None:
                        receiver.keys.verify(self.headers.get(JWS_HEADER), body)
                    delivery = json.loads(body)
                except (signature.SignatureError, JwsError, ValueError) as exc:
                    receiver.rejected += 1
                    log.warning("callback rejected: %s", exc)
                    self._reply(401)
                    return
                try:
                    receiver.inbox.take(delivery)
                except Exception as exc:
                    log.warning("callback handling failed: %s", exc)
                    self._reply(503)
                    return
                self._reply(204)

        return Handler

    def start(self) -> CallbackReceiver:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
