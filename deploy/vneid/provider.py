"""A local OpenID Connect provider standing in for VNeID (development and tests only).

It holds test identities in memory and speaks the protocol the portal's relying party uses:
discovery, the authorization endpoint (``login_hint=<cccd>`` of a known identity approves at
once; otherwise a small sign-in page), the token endpoint (authorization code with PKCE S256,
client authenticated by ``client_secret_basic`` or ``client_secret_post``), the JWKS, userinfo,
and back-channel logout (``POST /dev/logout`` sends a signed logout token to the registered
``backchannel_logout_uri``). ID tokens are ES256, signed with a key that rotates
(``POST /dev/rotate-key``): the previous keys stay in the JWKS for the overlap.

``POST /dev/forge`` makes the next ID token of an identity deliberately wrong (wrong ``aud``,
``iss``, an expired one, ``alg: none`` ...), so tests can prove the relying party refuses it.
None of this runs in a real deployment: the launcher starts it only with ``LOCAL_ADAPTERS`` on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from html import escape
from typing import Any

import requests
from flask import Flask, Response, jsonify, redirect, request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

CODE_TTL_S = 60
ACCESS_TTL_S = 300
ID_TOKEN_TTL_S = 300
KEEP_OLD_KEYS = 2
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class StandInConfig:
    issuer: str
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    backchannel_logout_uri: str | None = None
    client_public_key_pem: str | None = None  # the client's key for private_key_jwt (public part used)


@dataclass
class Grant:
    cccd: str
    client_id: str
    redirect_uri: str
    nonce: str | None
    challenge: str | None
    expires_at: float
    used: bool = False


@dataclass
class ProviderState:
    identities: dict[str, dict] = field(default_factory=dict)
    codes: dict[str, Grant] = field(default_factory=dict)
    access: dict[str, tuple[str, float]] = field(default_factory=dict)
    keys: list[ECKey] = field(default_factory=list)
    forged: dict[str, dict] = field(default_factory=dict)
    sessions: dict[str, str] = field(default_factory=dict)  # cccd -> sid of its last sign-in
    lock: threading.Lock = field(default_factory=threading.Lock)


def subject_of(cccd: str, issuer: str) -> str:
    """A stable subject per identity and provider (not the CCCD itself)."""
    return hashlib.sha256(f"{issuer}|{cccd}".encode()).hexdigest()[:32]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _key_type(pem: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        key = serialization.load_pem_public_key(pem.encode())
    return "EC" if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) else "RSA"


def _new_key() -> ECKey:
    key = ECKey.generate_key("P-256", auto_kid=True)
    return key


def create_app(cfg: StandInConfig) -> Flask:
    app = Flask("vneid-stand-in")
    state = ProviderState(keys=[_new_key()])
    app.config["state"] = state

    def jwks() -> dict:
        return KeySet(list(state.keys)).as_dict(private=False)

    def sign(claims: dict, cccd: str | None = None) -> str:
        forged = state.forged.pop(cccd, None) if cccd else None
        key = state.keys[-1]
        header = {"alg": "ES256", "kid": key.kid}
        if forged:
            claims.update(forged.get("claims") or {})
            for name in forged.get("drop") or []:
                claims.pop(name, None)
            how = forged.get("sign")
            if how == "none":
                head = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": key.kid}).encode())
                return f"{head}.{_b64(json.dumps(claims).encode())}."
            if how == "hs256_public_key":  # the classic confusion: HMAC keyed with the public key
                pem = key.as_pem(private=False)  # joserfc rightly refuses this, so it is forged by hand
                signing_input = (f"{_b64(json.dumps({'alg': 'HS256', 'kid': key.kid}).encode())}."
                                 f"{_b64(json.dumps(claims).encode())}")
                mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
                return f"{signing_input}.{_b64(mac)}"
            if how == "other_key":  # a key the JWKS does not hold, under the current kid
                return jwt.encode(header, claims, _new_key(), algorithms=["ES256"])
            if how == "unknown_kid":
                other = _new_key()
                return jwt.encode({"alg": "ES256", "kid": other.kid}, claims, other, algorithms=["ES256"])
        return jwt.encode(header, claims, key, algorithms=["ES256"])

    def person_claims(identity: dict) -> dict:
        out = {"cccd": identity["cccd"], "name": identity["full_name"], "birthdate": identity["date_of_birth"],
               "gender": identity["gender"], "phone_number": identity["phone"],
               "acr": f"{identity['level']}"}
        if identity.get("tax_code"):
            out.update(account_type="organization", tax_code=identity["tax_code"],
                       organization_name=identity.get("organization_name") or identity["full_name"])
        else:
            out["account_type"] = "citizen"
        return out

    @app.get("/.well-known/openid-configuration")
    def discovery():
        base = cfg.issuer
        return jsonify({
            "issuer": base, "authorization_endpoint": f"{base}/authorize", "token_endpoint": f"{base}/token",
            "jwks_uri": f"{base}/jwks", "userinfo_endpoint": f"{base}/userinfo",
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post",
                                                      "private_key_jwt"],
            "code_challenge_methods_supported": ["S256"], "scopes_supported": ["openid", "profile", "phone"],
            "acr_values_supported": ["1", "2"], "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
            "claims_supported": ["sub", "cccd", "name", "birthdate", "gender", "phone_number", "acr",
                                 "account_type", "tax_code", "organization_name"],
        })

    @app.get("/jwks")
    def jwks_endpoint():
        return jsonify(jwks())

    def _authorize_params(source) -> tuple[dict, Response | None]:
        p = {k: source.get(k) for k in ("response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
                                         "code_challenge", "code_challenge_method", "login_hint")}
        if p["client_id"] != cfg.client_id or p["redirect_uri"] not in cfg.redirect_uris:
            return p, Response("unknown client or redirect_uri", status=400)  # never redirect to an unknown URI
        if p["response_type"] != "code" or "openid" not in (p["scope"] or "").split():
            return p, _error_redirect(p, "unsupported_response_type")
        if p["code_challenge_method"] != "S256" or not p["code_challenge"]:
            return p, _error_redirect(p, "invalid_request")
        return p, None

    def _error_redirect(p: dict, error: str):
        query = {"error": error}
        if p.get("state"):
            query["state"] = p["state"]
        return redirect(f"{p['redirect_uri']}?{urllib.parse.urlencode(query)}", code=302)

    def _approve(p: dict, cccd: str):
        code = secrets.token_urlsafe(32)
        with state.lock:
            state.codes[code] = Grant(cccd, p["client_id"], p["redirect_uri"], p.get("nonce"), p["code_challenge"],
                                     time.time() + CODE_TTL_S)
        query = {"code": code}
        if p.get("state"):
            query["state"] = p["state"]
        sep = "&" if "?" in p["redirect_uri"] else "?"
        return redirect(f"{p['redirect_uri']}{sep}{urllib.parse.urlencode(query)}", code=302)

    @app.get("/authorize")
    def authorize():
        p, failure = _authorize_params(request.args)
        if failure is not None:
            return failure
        hint = p.get("login_hint")
        if hint and hint in state.identities:
            return _approve(p, hint)
        hidden = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
                         for k, v in p.items() if v and k != "login_hint")
        page = ("<!doctype html><html lang='vi'><head><meta charset='utf-8'><title>VNeID (thử nghiệm)</title>"
                "</head><body><h1>Đăng nhập VNeID (môi trường thử nghiệm)</h1>"
                f"<form method='post' action='{escape(cfg.issuer)}/authorize'>{hidden}"
                "<label for='cccd'>Số định danh cá nhân</label> <input id='cccd' name='cccd' "
                "inputmode='numeric' autocomplete='username'> <button type='submit'>Đăng nhập</button>"
                "</form></body></html>")
        return Response(page, mimetype="text/html", headers={"Cache-Control": "no-store"})

    @app.post("/authorize")
    def authorize_form():
        p, failure = _authorize_params(request.form)
        if failure is not None:
            return failure
        cccd = request.form.get("cccd", "")
        if cccd not in state.identities:
            return _error_redirect(p, "access_denied")
        return _approve(p, cccd)

    seen_assertions: set[str] = set()

    def _assertion_ok(assertion: str) -> bool:
        """RFC 7523 client authentication: a JWT signed with the client's key, for this endpoint, once."""
        if not cfg.client_public_key_pem:
            return False
        try:
            key = (ECKey if "EC" in _key_type(cfg.client_public_key_pem) else RSAKey).import_key(
                cfg.client_public_key_pem)
            claims = jwt.decode(assertion, key, algorithms=["ES256", "RS256"]).claims
            jwt.JWTClaimsRegistry(iss={"essential": True, "value": cfg.client_id},
                                  sub={"essential": True, "value": cfg.client_id},
                                  aud={"essential": True, "value": f"{cfg.issuer}/token"},
                                  exp={"essential": True}, jti={"essential": True}).validate(claims)
        except (JoseError, ValueError, TypeError):
            return False
        with state.lock:
            if claims["jti"] in seen_assertions:
                return False
            seen_assertions.add(claims["jti"])
        return True

    def _client_ok() -> bool:
        if request.form.get("client_assertion_type") == CLIENT_ASSERTION_TYPE:
            return _assertion_ok(request.form.get("client_assertion", ""))
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            cid, secret = auth.username or "", auth.password or ""
        else:
            cid, secret = request.form.get("client_id", ""), request.form.get("client_secret", "")
        return cid == cfg.client_id and hmac.compare_digest(secret.encode(), cfg.client_secret.encode())

    def _token_error(error: str, status: int = 400):
        return jsonify({"error": error}), status

    @app.post("/token")
    def token():
        if not _client_ok():
            return _token_error("invalid_client", 401)
        if request.form.get("grant_type") != "authorization_code":
            return _token_error("unsupported_grant_type")
        code = request.form.get("code", "")
        with state.lock:
            grant = state.codes.get(code)
            if grant is None or grant.used or grant.expires_at < time.time():
                return _token_error("invalid_grant")
            grant.used = True  # a code is good once, whatever happens next
        if grant.redirect_uri != request.form.get("redirect_uri"):
            return _token_error("invalid_grant")
        verifier = request.form.get("code_verifier", "")
        if not verifier or _b64(hashlib.sha256(verifier.encode()).digest()) != grant.challenge:
            return _token_error("invalid_grant")
        identity = state.identities[grant.cccd]
        now = int(time.time())
        sid = secrets.token_hex(8)
        state.sessions[grant.cccd] = sid
        claims = {"iss": cfg.issuer, "sub": subject_of(grant.cccd, cfg.issuer), "aud": cfg.client_id,
                  "iat": now, "exp": now + ID_TOKEN_TTL_S, "auth_time": now, "sid": sid,
                  **person_claims(identity)}
        if grant.nonce:
            claims["nonce"] = grant.nonce
        id_token = sign(claims, grant.cccd)
        access = secrets.token_urlsafe(32)
        with state.lock:
            state.access[access] = (grant.cccd, time.time() + ACCESS_TTL_S)
        return jsonify({"access_token": access, "token_type": "Bearer", "expires_in": ACCESS_TTL_S,
                        "id_token": id_token, "scope": "openid profile phone"}), 200, {"Cache-Control": "no-store"}

    @app.get("/userinfo")
    def userinfo():
        header = request.headers.get("Authorization", "")
        held = state.access.get(header.removeprefix("Bearer ").strip()) if header.startswith("Bearer ") else None
        if held is None or held[1] < time.time():
            return Response(status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        identity = state.identities[held[0]]
        return jsonify({"sub": subject_of(identity["cccd"], cfg.issuer), **person_claims(identity)})

    # -- development knobs (the stand-in exists only locally) ------------------------------

    @app.post("/dev/identities")
    def add_identity():
        body = request.get_json(silent=True) or {}
        needed = ("cccd", "full_name", "date_of_birth", "gender", "phone", "level")
        if any(body.get(k) in (None, "") for k in needed) or body.get("level") not in (1, 2):
            return jsonify({"error": "invalid_identity"}), 422
        identity = {k: body[k] for k in needed}
        for extra in ("tax_code", "organization_name"):
            if body.get(extra):
                identity[extra] = body[extra]
        state.identities[str(body["cccd"])] = identity
        return jsonify({**identity, "sub": subject_of(identity["cccd"], cfg.issuer)}), 201

    @app.post("/dev/rotate-key")
    def rotate_key():
        with state.lock:
            state.keys.append(_new_key())
            del state.keys[:-KEEP_OLD_KEYS]
        return jsonify({"kid": state.keys[-1].kid, "published": [k.kid for k in state.keys]})

    @app.post("/dev/forge")
    def forge():
        """``{cccd, claims?, drop?, sign?}``: the next ID token for ``cccd`` is made wrong on purpose."""
        body = request.get_json(silent=True) or {}
        if body.get("cccd") not in state.identities:
            return jsonify({"error": "unknown_identity"}), 404
        state.forged[body["cccd"]] = {k: body.get(k) for k in ("claims", "drop", "sign")}
        return jsonify({"armed": True})

    @app.post("/dev/logout")
    def logout():
        """Send a back-channel logout token for ``cccd`` to the relying party; answer what it said."""
        body = request.get_json(silent=True) or {}
        cccd = body.get("cccd")
        if cccd not in state.identities or not cfg.backchannel_logout_uri:
            return jsonify({"error": "unknown_identity_or_no_logout_uri"}), 404
        now = int(time.time())
        claims: dict[str, Any] = {"iss": cfg.issuer, "aud": cfg.client_id, "iat": now, "exp": now + 120,
                                  "jti": secrets.token_hex(16), "sub": subject_of(cccd, cfg.issuer),
                                  "events": {BACKCHANNEL_EVENT: {}}}
        if state.sessions.get(cccd):
            claims["sid"] = state.sessions[cccd]
        claims.update(body.get("claims") or {})
        key = state.keys[-1]
        token = jwt.encode({"alg": "ES256", "kid": key.kid, "typ": "logout+jwt"}, claims, key,
                           algorithms=["ES256"])
        answer = requests.post(cfg.backchannel_logout_uri, data={"logout_token": token}, timeout=10)
        return jsonify({"status": answer.status_code, "body": answer.text[:2000], "logout_token": token})

    return app
