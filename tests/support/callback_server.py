"""A subscriber's callback endpoint on 127.0.0.1 for tests: answers the webhook handshake,
records every delivery (headers and body bytes), and can be told to fail, refuse the
handshake or redirect."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from requests.structures import CaseInsensitiveDict


class CallbackServer:
    def __init__(self, *, handshake: bool = True, redirect_to: str | None = None):
        self.handshake = handshake
        self.redirect_to = redirect_to
        self.failing = False
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, handshake included
        self.deliveries: list[dict] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _redirect(self) -> bool:
                if outer.redirect_to:
                    self.send_response(307)
                    self.send_header("Location", outer.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return True
                return False

            def do_OPTIONS(self):
                with outer._lock:
                    outer.requests.append(("OPTIONS", self.path))
                if self._redirect():
                    return
                self.send_response(200 if outer.handshake else 403)
                if outer.handshake:
                    self.send_header("WebHook-Allowed-Origin", self.headers.get("WebHook-Request-Origin", ""))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer._lock:
                    outer.requests.append(("POST", self.path))
                if self._redirect():
                    return
                if outer.failing:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with outer._lock:
                    outer.deliveries.append({"headers": CaseInsensitiveDict(self.headers.items()), "body": body})
                self.send_response(204)
                self.end_headers()

            def do_GET(self):
                with outer._lock:
                    outer.requests.append(("GET", self.path))
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> CallbackServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[dict]:
        """The delivered CloudEvents, parsed, in arrival order."""
        with self._lock:
            return [json.loads(d["body"]) for d in self.deliveries]

    def snapshot(self) -> list[dict]:
        with self._lock:
            return list(self.deliveries)
