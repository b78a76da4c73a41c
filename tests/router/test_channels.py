"""The signed HTTP channel against a real local HTTP server: what counts as delivered."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deploy.backoffice import signature
from services.router.channels import DeliveryFailed, HttpChannel


class Endpoint:
    """Answers POST /<status> with that status; /redirect sends a 302 to a page that says 200."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict, bytes]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                endpoint.requests.append((self.command, self.path, dict(self.headers), self.rfile.read(length)))
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", "/200")
                elif self.path == "/slow":
                    time.sleep(2)
                    self.send_response(204)
                else:
                    self.send_response(int(self.path.strip("/")))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self):
                self._answer()

            def do_GET(self):
                self._answer()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


@pytest.fixture
def endpoint():
    e = Endpoint()
    yield e
    e.server.shutdown()
    e.server.server_close()


def test_2xx_is_delivered_with_a_verifiable_signature(endpoint):
    HttpChannel(5).send(endpoint.url("/204"), "k", b'{"a":1}', "d-1")
    [(method, _, headers, body)] = endpoint.requests
    assert method == "POST" and body == b'{"a":1}' and headers["X-Portal-Delivery"] == "d-1"
    signature.verify("k", headers[signature.TIMESTAMP_HEADER], headers[signature.SIGNATURE_HEADER], body)


@pytest.mark.parametrize(("path", "reason"), [("/500", "status 500"), ("/404", "status 404"),
                                              ("/redirect", "status 302")])
def test_errors_and_redirects_are_failed_attempts(endpoint, path, reason):
    with pytest.raises(DeliveryFailed, match=reason):
        HttpChannel(5).send(endpoint.url(path), "k", b"{}", "d-2")
    assert [r[0] for r in endpoint.requests] == ["POST"]  # a redirect is not followed as a GET


def test_a_closed_port_a_timeout_and_a_bad_url_are_failed_attempts(endpoint):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(DeliveryFailed, match="http:"):
        HttpChannel(2).send(f"http://127.0.0.1:{closed}/x", "k", b"{}", "d-3")
    with pytest.raises(DeliveryFailed, match="http:"):
        HttpChannel(0.5).send(endpoint.url("/slow"), "k", b"{}", "d-4")
    with pytest.raises(DeliveryFailed, match="no usable callback URL"):
        HttpChannel(2).send("file:///etc/passwd", "k", b"{}", "d-5")
