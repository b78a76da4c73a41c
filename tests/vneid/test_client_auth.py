"""The relying party's client authentication at the token endpoint, against the real stand-in
(served in this process over HTTP): ``client_secret_basic``, ``client_secret_post`` and
``private_key_jwt`` (RFC 7523) work; a wrong secret or a key the provider does not know is
refused, and the code is spent either way."""

from __future__ import annotations

import threading
import urllib.parse

import pytest
import requests
from joserfc.jwk import ECKey
from werkzeug.serving import make_server

from deploy.vneid.provider import StandInConfig, create_app
from portal_common.errors import Unauthorized
from services.identity.adapters.vneid import VneidProvider
from services.identity.settings import VneidSettings
from tests.support.accounts import random_person

REDIRECT = "http://rp.test/cb"
CLIENT_KEY = ECKey.generate_key("P-256", private=True)


@pytest.fixture(scope="module")
def provider_url():
    server = make_server("127.0.0.1", 0, None)  # bound first, to learn the port
    port = server.server_port
    server.server_close()
    url = f"http://127.0.0.1:{port}"
    app = create_app(StandInConfig(issuer=url, client_id="rp", client_secret="s3cret", redirect_uris=(REDIRECT,),
                                   client_public_key_pem=CLIENT_KEY.as_pem(private=False).decode()))
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    person = random_person()
    body = {k: person[k] for k in ("cccd", "full_name", "date_of_birth", "gender", "phone")}
    assert requests.post(f"{url}/dev/identities", json={**body, "level": 2}, timeout=5).status_code == 201
    yield url, body["cccd"]
    server.shutdown()


def _rp(url: str, **over) -> VneidProvider:
    settings = {"issuer": url, "client_id": "rp", "client_secret": "s3cret", "redirect_uris": (REDIRECT,),
                **over}
    return VneidProvider(VneidSettings(**settings))


def _code(rp: VneidProvider, cccd: str) -> tuple[str, str]:
    verifier, nonce = "v" * 50, "nonce-1"
    url = rp.authorization_url(REDIRECT, "state-1", nonce, verifier, login_hint=cccd)
    back = requests.get(url, allow_redirects=False, timeout=5)
    assert back.status_code == 302
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back.headers["Location"]).query))["code"], verifier


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_client_secret_methods(provider_url, method):
    url, cccd = provider_url
    rp = _rp(url, token_auth_method=method)
    code, verifier = _code(rp, cccd)
    tokens = rp.exchange(code, REDIRECT, verifier)
    assert rp.verify_id_token(tokens["id_token"], "nonce-1")["cccd"] == cccd
    assert rp.userinfo(tokens["access_token"])["cccd"] == cccd


def test_private_key_jwt(provider_url):
    url, cccd = provider_url
    rp = _rp(url, client_secret=None, token_auth_method="private_key_jwt",
             private_key_pem=CLIENT_KEY.as_pem(private=True).decode())
    code, verifier = _code(rp, cccd)
    tokens = rp.exchange(code, REDIRECT, verifier)
    assert rp.verify_id_token(tokens["id_token"], "nonce-1")["acr"] == "2"


def test_a_wrong_secret_or_unknown_key_is_refused(provider_url):
    url, cccd = provider_url
    rp = _rp(url, client_secret="wrong")
    code, verifier = _code(rp, cccd)
    with pytest.raises(Unauthorized):
        rp.exchange(code, REDIRECT, verifier)
    stranger = ECKey.generate_key("P-256", private=True)
    rp = _rp(url, client_secret=None, token_auth_method="private_key_jwt",
             private_key_pem=stranger.as_pem(private=True).decode())
    code, verifier = _code(rp, cccd)
    with pytest.raises(Unauthorized):
        rp.exchange(code, REDIRECT, verifier)


def test_a_wrong_pkce_verifier_is_refused(provider_url):
    url, cccd = provider_url
    rp = _rp(url)
    code, _ = _code(rp, cccd)
    with pytest.raises(Unauthorized):
        rp.exchange(code, REDIRECT, "w" * 50)
