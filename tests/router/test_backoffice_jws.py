"""The reference back office checks both signatures: the HMAC of its shared secret and the
Portal-Signature-JWS against the published keys, fetching the key set again when a delivery
names a key it has not seen (a rotation)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from deploy.backoffice.inbox import Inbox
from deploy.backoffice.jws import DeliveryKeys, JwsError
from deploy.backoffice.receiver import CallbackReceiver
from services.router.delivery_keys import HEADER, load_private, public_jwk, sign_detached
from services.router.delivery_keys import generate_pem as new_key
from services.router.domain.signing import signed_headers


class KeySource:
    def __init__(self, *keys):
        self.keys = list(keys)
        self.fetches = 0

    def __call__(self) -> dict:
        self.fetches += 1
        return {"keys": [public_jwk(k) for k in self.keys]}


def test_jws_verifies_refetches_on_rotation_and_refuses_tampering():
    old, new = load_private(new_key()), load_private(new_key())
    source = KeySource(old)
    keys = DeliveryKeys("http://unused.invalid/keys", refresh_s=0, fetch=source)
    body = b'{"specversion":"1.0","id":"x"}'
    assert keys.verify(sign_detached(old, body), body) == old.thumbprint()
    source.keys = [new, old]  # rotated: the new key is published beside the old one
    assert keys.verify(sign_detached(new, body), body) == new.thumbprint()
    assert source.fetches == 2
    for bad in (sign_detached(new, body + b" "), "", None, "a.b.c", sign_detached(load_private(new_key()), body)):
        with pytest.raises(JwsError):
            keys.verify(bad, body)


def _post(url: str, body: bytes, headers: dict) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_callback_receiver_needs_both_signatures():
    key = load_private(new_key())
    secret = "shared-secret"
    inbox = Inbox()
    receiver = CallbackReceiver(inbox, secret, keys=DeliveryKeys("http://unused.invalid", fetch=KeySource(key)))
    receiver.start()
    try:
        delivery = {"delivery_id": "d-1", "agency_code": "AG", "dossier_code": "AG-1", "event_type": "DossierSubmitted",
                    "data": {}}
        body = json.dumps(delivery).encode()
        hmac_headers = signed_headers(secret, body, "d-1", time.time())
        assert _post(receiver.url, body, hmac_headers) == 401, "HMAC alone is not enough with keys"
        forged = sign_detached(load_private(new_key()), body)
        assert _post(receiver.url, body, {**hmac_headers, HEADER: forged}) == 401
        assert _post(receiver.url, body, {**hmac_headers, HEADER: sign_detached(key, body)}) == 204
        assert receiver.rejected == 2 and [d["delivery_id"] for d in inbox.received] == ["d-1"]
    finally:
        receiver.stop()
