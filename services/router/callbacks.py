"""Subscription callbacks: which URLs may be called, the verification handshake, and sending
a signed CloudEvent.

No server-side request forgery through a subscription: a callback's host is resolved and
every address it resolves to is checked (``domain.subscriptions.refused_address``) when the
subscription is made and again before every send, and the connection then goes to an
address that was checked, never to a second lookup of the name (a host that answers one
address to the check and another to the connection, DNS rebinding, reaches nothing new): the
request still names the host in ``Host`` and, over TLS, in SNI and the certificate check.
Loopback needs ``CALLBACK_ALLOW_LOOPBACK`` (``make up`` sets it), private ranges
``CALLBACK_ALLOW_PRIVATE``, and plain ``http`` is only accepted with one of them (local
development). Redirects are never followed.

Verification follows the CloudEvents HTTP webhook handshake: an ``OPTIONS`` request with
``WebHook-Request-Origin``; the endpoint agrees by answering 2xx with ``WebHook-Allowed-Origin``
naming that origin (or ``*``). Nothing is delivered to an endpoint that did not agree.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from portal_common import config
from services.router.channels import DeliveryFailed
from services.router.domain.subscriptions import refused_address, refused_url_scheme

ORIGIN = "portal.gov.vn"


class CallbackRefused(Exception):
    """The callback URL may not be used (the reason is safe to show the agency)."""


def _resolve(host: str, port: int) -> list[str]:
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)})


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to ``host`` made to one checked ``address`` (no lookup of its own)."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """The same over TLS: SNI and the certificate are checked against ``host``."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


@dataclass
class CallbackPolicy:
    allow_loopback: bool = False
    allow_private: bool = False
    timeout_s: float = 10.0
    resolve: Callable[[str, int], list[str]] = _resolve

    @classmethod
    def from_env(cls) -> CallbackPolicy:
        return cls(config.env_bool("CALLBACK_ALLOW_LOOPBACK", False, "router"),
                   config.env_bool("CALLBACK_ALLOW_PRIVATE", False, "router"),
                   config.env_float("CALLBACK_TIMEOUT", 10.0, "router"))

    @property
    def https_only(self) -> bool:
        return not (self.allow_loopback or self.allow_private)

    def check(self, url: str) -> list[str]:
        """The addresses ``url``'s host resolves to; ``CallbackRefused`` unless every one of them
        may be called."""
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise CallbackRefused("not a valid URL") from None
        reason = refused_url_scheme(parts.scheme, parts.hostname, self.https_only)
        if reason is None and (parts.username or parts.password):
            reason = "credentials in the URL are not allowed; use auth_header"
        if reason:
            raise CallbackRefused(reason)
        try:
            addresses = self.resolve(parts.hostname or "", port)
        except (OSError, UnicodeError):
            raise CallbackRefused("the callback host does not resolve") from None
        if not addresses:
            raise CallbackRefused("the callback host does not resolve")
        for address in addresses:
            why = refused_address(address, self.allow_loopback, self.allow_private)
            if why:
                raise CallbackRefused(f"the callback host resolves to a {why}" if why.endswith("address")
                                      else f"the callback host resolves to a refused address: {why}")
        return addresses


class CallbackClient:
    """Checks, verifies and POSTs to subscription callbacks."""

    def __init__(self, policy: CallbackPolicy):
        self.policy = policy
        self._idle: dict[tuple[str, str, int], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def verify(self, url: str, auth_header: str | None) -> None:
        """The webhook handshake; ``CallbackRefused`` unless the endpoint agrees."""
        addresses = self.policy.check(url)
        headers = {"WebHook-Request-Origin": ORIGIN}
        if auth_header:
            headers["Authorization"] = auth_header
        key, target = _endpoint(url)
        conn = self._open(key, addresses[0])
        try:
            conn.request("OPTIONS", target, headers=headers)
            resp = conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise CallbackRefused(f"the callback did not answer the verification request: "
                                  f"{type(exc).__name__}") from None
        finally:
            conn.close()
        if not 200 <= resp.status < 300:  # a redirect included: never followed
            raise CallbackRefused(f"the verification request was answered {resp.status}")
        if resp.getheader("WebHook-Allowed-Origin", "").strip() not in ("*", ORIGIN):
            raise CallbackRefused("the callback did not allow this origin (WebHook-Allowed-Origin)")

    def send(self, url: str, headers: dict[str, str], body: bytes) -> None:
        """POST one delivery; a 2xx is success, anything else (a redirect included) fails.

        Connections are kept alive per endpoint and reused (a callback answers many
        deliveries); a kept connection the endpoint closed meanwhile is replaced once."""
        try:
            addresses = self.policy.check(url)
        except CallbackRefused as exc:
            raise DeliveryFailed(f"http: refused: {exc}") from None
        key, target = _endpoint(url)
        for fresh in (False, True):
            conn = self._connection(key, addresses, fresh)
            try:
                conn.request("POST", target, body=body, headers={**headers, "Content-Length": str(len(body))})
                resp = conn.getresponse()
                resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                conn.close()
                if not fresh:
                    continue  # the endpoint closed a kept connection: once more on a new one
                raise DeliveryFailed(f"http: {type(exc).__name__}: {exc}"[:300]) from None
            except (OSError, http.client.HTTPException, ValueError) as exc:
                conn.close()
                raise DeliveryFailed(f"http: {type(exc).__name__}: {exc}"[:300]) from None
            if resp.will_close:
                conn.close()
            else:
                self._release(key, conn)
            if not 200 <= resp.status < 300:
                raise DeliveryFailed(f"http: status {resp.status}")
            return

    def _connection(self, key: tuple[str, str, int], addresses: list[str], fresh: bool) -> http.client.HTTPConnection:
        """A kept connection to an address that passes the check just made, or a new one."""
        if not fresh:
            with self._lock:
                idle = self._idle.get(key) or []
                while idle:
                    conn = idle.pop()
                    if getattr(conn, "address", None) in addresses:
                        return conn
                    conn.close()  # the host moved off this address: do not keep using it
        return self._open(key, addresses[0])

    def _open(self, key: tuple[str, str, int], address: str) -> http.client.HTTPConnection:
        scheme, host, port = key
        kind = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
        return kind(host, port, address, self.policy.timeout_s)

    def _release(self, key: tuple[str, str, int], conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < 4:
                idle.append(conn)
                return
        conn.close()


def _endpoint(url: str) -> tuple[tuple[str, str, int], str]:
    """``((scheme, host, port), path and query)`` of a checked callback URL."""
    parts = urlsplit(url)
    key = (parts.scheme, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
    return key, (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
