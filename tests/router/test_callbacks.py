"""The subscription callback client against HTTP servers of the test's own on 127.0.0.0/8:
kept-alive connections are reused, a connection the endpoint closed is replaced, redirects and
errors fail the attempt, and connections go to the checked address only (no DNS rebinding)."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.router.callbacks import CallbackClient, CallbackPolicy, CallbackRefused
from services.router.channels import DeliveryFailed
from tests.support.callback_server import CallbackServer


class Server:
    def __init__(self, status: int = 204, keep_alive: bool = True, location: str | None = None,
                 drop: bool = False, address: tuple[str, int] = ("127.0.0.1", 0)):
        self.connections = 0
        self.posts: list[bytes] = []
        self.hosts: list[str] = []
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
                outer.hosts.append(self.headers["Host"])
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if drop:  # hang up after answering, without saying so
                    self.close_connection = True

        self.server = ThreadingHTTPServer(address, Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook?x=1"

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


def _resolver(answers: dict[str, list[str]], calls: list[str]):
    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[host]
    return resolve


def test_the_connection_goes_to_the_checked_address_not_to_a_second_lookup(monkeypatch):
    """DNS rebinding: the name answers an allowed address to the check and an internal one to
    any later lookup; the delivery reaches the checked address and the internal one nothing."""
    internal = Server(address=("127.0.0.2", 0))
    public = Server(address=("127.0.0.1", internal.port))
    real_getaddrinfo = socket.getaddrinfo

    def rebinding(host, *args, **kwargs):  # what a lookup after the check would be told
        if host == "agency.example":
            return real_getaddrinfo("127.0.0.2", *args, **kwargs)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    calls: list[str] = []
    client = CallbackClient(CallbackPolicy(allow_loopback=True, timeout_s=5,
                                           resolve=_resolver({"agency.example": ["127.0.0.1"]}, calls)))
    try:
        for n in range(3):
            client.send(f"http://agency.example:{public.port}/hook", {}, b"%d" % n)
        assert public.posts == [b"0", b"1", b"2"] and internal.posts == [] and internal.connections == 0
        assert public.hosts == [f"agency.example:{public.port}"] * 3  # the name, not the address
        assert calls == ["agency.example"] * 3 and public.connections == 1  # checked each time, one connection
    finally:
        internal.stop()
        public.stop()


def test_a_kept_connection_is_dropped_when_its_address_no_longer_passes():
    first = Server(address=("127.0.0.1", 0))
    second = Server(address=("127.0.0.3", first.port))
    answers = {"moving.example": ["127.0.0.1"]}
    client = CallbackClient(CallbackPolicy(allow_loopback=True, timeout_s=5, resolve=_resolver(answers, [])))
    url = f"http://moving.example:{first.port}/hook"
    try:
        client.send(url, {}, b"before")
        answers["moving.example"] = ["127.0.0.3"]
        client.send(url, {}, b"after")
        assert first.posts == [b"before"] and second.posts == [b"after"]
    finally:
        first.stop()
        second.stop()


def test_the_handshake_goes_to_the_checked_address_too():
    server = CallbackServer().start()
    port = int(server.url.split(":")[2].split("/")[0])
    calls: list[str] = []
    client = CallbackClient(CallbackPolicy(allow_loopback=True, timeout_s=5,
                                           resolve=_resolver({"hooks.example": ["127.0.0.1"]}, calls)))
    try:
        client.verify(f"http://hooks.example:{port}/hook", None)  # the name is in no DNS: pinned
        assert server.requests == [("OPTIONS", "/hook")] and calls == ["hooks.example"]
        refused = CallbackClient(CallbackPolicy(allow_loopback=False, allow_private=True, timeout_s=5,
                                                resolve=_resolver({"hooks.example": ["127.0.0.1"]}, [])))
        with pytest.raises(CallbackRefused, match="loopback"):
            refused.verify(f"http://hooks.example:{port}/hook", None)
        assert server.requests == [("OPTIONS", "/hook")]
    finally:
        server.stop()
