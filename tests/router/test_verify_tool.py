"""``python -m services.router.verify``: a saved delivery verifies against a key set file; a
changed byte, a missing header, another key or a body that is no CloudEvent does not."""

from __future__ import annotations

import json

from services.router.delivery_keys import HEADER, generate_pem, load_private, public_jwk, sign_detached
from services.router.verify import main, parse_delivery


def _saved(tmp_path, body: bytes, signature: str | None, name: str = "d.http"):
    head = "POST /hook HTTP/1.1\r\nHost: backoffice\r\nContent-Type: application/cloudevents+json\r\n"
    if signature is not None:
        head += f"{HEADER}: {signature}\r\n"
    path = tmp_path / name
    path.write_bytes(head.encode() + b"\r\n" + body)
    return path


def test_the_tool_verifies_saved_deliveries(tmp_path, capsys):
    key, other = load_private(generate_pem()), load_private(generate_pem())
    jwks = tmp_path / "keys.json"
    jwks.write_text(json.dumps({"keys": [public_jwk(key)]}))
    body = json.dumps({"specversion": "1.0", "id": "e-1", "type": "vn.gov.portal.DossierReceived.v1",
                       "subject": "AG-1", "data": {"code": "AG-1"}}).encode()
    good = _saved(tmp_path, body, sign_detached(key, body))
    assert main([str(good), "--jwks", str(jwks)]) == 0
    assert key.thumbprint() in capsys.readouterr().out
    assert parse_delivery(good.read_bytes())[1] == body
    assert main([str(_saved(tmp_path, body + b" ", sign_detached(key, body), "t.http")), "--jwks", str(jwks)]) == 1
    assert main([str(_saved(tmp_path, body, None, "n.http")), "--jwks", str(jwks)]) == 1
    assert main([str(_saved(tmp_path, body, sign_detached(other, body), "o.http")), "--jwks", str(jwks)]) == 1
    plain = b'{"hello": "world"}'
    assert main([str(_saved(tmp_path, plain, sign_detached(key, plain), "p.http")), "--jwks", str(jwks)]) == 1
    assert main([str(tmp_path / "missing.http"), "--jwks", str(jwks)]) == 2
