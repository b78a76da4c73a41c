"""No server-side request forgery through a subscription, through the running router with the
default configuration (loopback not allowed): subscriptions to a loopback server of the
test's own, to a name that resolves to loopback, and to a server that redirects to loopback
are all refused, and the test's servers see no request at all. Nothing here sends traffic
outside 127.0.0.0/8: every refused address is refused before any connection."""

from __future__ import annotations

import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from portal_common.errors import InvalidInput
from services.router.delivery_keys import generate_pem
from tests.router.conftest import RouterProcess
from tests.support.callback_server import CallbackServer


@pytest.fixture(scope="module")
def strict_router(router_db_url, router_amqp, tmp_path_factory):
    proc = RouterProcess(router_db_url, router_amqp, tmp_path_factory.mktemp("router-ssrf-logs"), env={
        "AGENCY_SECRET_DELIVERY_KEY": generate_pem(), "CALLBACK_ALLOW_LOOPBACK": "no",
        "CALLBACK_ALLOW_PRIVATE": "no"}).start()
    yield proc
    proc.stop()


@pytest.fixture
def rpc(strict_router):
    with ClusterRpcProxy({"AMQP_URI": strict_router.amqp_uri}, timeout=30) as proxy:
        yield proxy.router


def test_loopback_callbacks_are_refused_before_any_request(rpc):
    target = CallbackServer().start()
    redirecting = CallbackServer(redirect_to=target.url).start()
    try:
        port = target.server.server_address[1]
        urls = [target.url, f"https://127.0.0.1:{port}/hook", f"http://localhost:{port}/hook",
                f"https://localhost:{port}/hook", f"https://[::1]:{port}/hook",
                f"https://[::ffff:127.0.0.1]:{port}/hook", redirecting.url,
                f"https://127.1.2.3:{redirecting.server.server_address[1]}/hook",
                "https://169.254.169.254/latest/meta-data/", "https://10.0.0.1/hook", "https://192.168.0.1/hook",
                "file:///etc/passwd"]
        for url in urls:
            with pytest.raises(InvalidInput) as refused:
                rpc.create_subscription(None, "SSRF-AG", {"callback_url": url, "channels": ["dossiers"],
                                                          "filters": {}})
            assert refused.value.code in ("callback_refused", "invalid_input"), url
        assert target.requests == [] and redirecting.requests == [], "no request reached the test's servers"
        assert rpc.list_subscriptions("SSRF-AG") == []
    finally:
        target.stop()
        redirecting.stop()
