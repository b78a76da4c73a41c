"""The subscription callback client against HTTP servers of the test's own on 127.0.0.1:
kept-alive connections are reused, a connection the endpoint closed is replaced, redirects and
errors fail the attempt."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.router.callbacks import CallbackClient, CallbackPolicy
from services.router.channels import DeliveryFailed


class Server:
    def __init__(self, status: int = 204, keep_alive: bool = True, location: str | None = None,
                 drop: bool = False):
        self.connections = 0
        self.posts: list[bytes] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def setup(self):
                outer.connections += 1
                super().setup()

            def log_message(self, *args):
                pass

            def do_POST(self):
                outer.posts.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if drop:  # hang up after answering, without saying so
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?x=1"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def client():
    return CallbackClient(CallbackPolicy(allow_loopback=True, timeout_s=5))


def test_kept_alive_connections_are_reused(client):
    server = Server()
    try:
        for n in range(5):
            client.send(server.url, {"Content-Type": "application/json"}, b'{"n": %d}' % n)
        assert server.posts == [b'{"n": %d}' % n for n in range(5)]
        assert server.connections == 1
    finally:
        server.stop()


def test_a_connection_closed_by_the_endpoint_is_replaced(client):
    server = Server(drop=True)
    try:
        for n in range(3):
            client.send(server.url, {}, b"%d" % n)
        assert server.posts == [b"0", b"1", b"2"] and server.connections == 3
    finally:
        server.stop()


@pytest.mark.parametrize("status, location", [(500, None), (404, None), (307, "http://127.0.0.1:1/elsewhere")])
def test_errors_and_redirects_fail_the_attempt(client, status, location):
    server = Server(status=status, keep_alive=False, location=location)
    try:
        with pytest.raises(DeliveryFailed, match=str(status)):
            client.send(server.url, {}, b"x")
    finally:
        server.stop()


def test_a_refused_address_is_never_contacted():
    server = Server()
    try:
        strict = CallbackClient(CallbackPolicy(allow_loopback=False))
        with pytest.raises(DeliveryFailed, match="refused"):
            strict.send(server.url, {}, b"x")
        assert server.connections == 0
    finally:
        server.stop()
