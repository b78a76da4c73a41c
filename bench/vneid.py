"""``python -m bench vneid [--quick] [--gateway-url URL]``: sign-ins per second with VNeID vs password.

Measures, with the same number of sign-ins and clients in flight, through the running system:
the baseline (``POST /api/v1/auth/challenge``: one RPC to identity, one INSERT), a completed
password sign-in (``/auth/login`` with its Argon2id check, the one-time code read back from the
local SMS outbox, ``/auth/login/confirm``: tokens) and a completed VNeID sign-in
(``/auth/vneid/start``, the authorization URL opened at the local stand-in with ``login_hint``
and its 302 read, ``/auth/vneid/complete``: code exchange, ID token verified against the
cached JWKS, userinfo, tokens). Each client has its own account and its own VNeID identity, made
before the clock starts. The three run in five alternating chunks, seconds summed, so load from
other work falls on all alike.

Without ``--gateway-url`` it starts the whole system on a throw-away database with the local
stand-ins (the VNeID one on a free port). Last line: ``RESULT vneid vneid_per_s=...
password_per_s=... vneid_vs_password=... baseline_per_s=... ...``, or ``FAILED vneid errors=N``.
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse

import requests

from bench.signin import _measure, measure_alternating, on_throwaway_system
from bench.support import Failures, finish, free_port, ms

REDIRECT_URI = "http://127.0.0.1:8080/dang-nhap/vneid"  # registered by the launcher; never fetched


def run(gateway_url: str, clients: int, per_client: int) -> int:
    from tests.support import accounts

    people = [accounts.register_citizen(gateway_url) for _ in range(clients)]
    identities = []
    for _ in range(clients):
        person = accounts.random_person()
        body = {k: person[k] for k in ("cccd", "full_name", "date_of_birth", "gender", "phone")}
        accounts.call(f"{gateway_url}/api/v1/dev/vneid-identities", "POST", {**body, "level": 2})
        identities.append(body["cccd"])
    base = f"{gateway_url}/api/v1/auth"
    sessions = [requests.Session() for _ in range(clients)]

    def challenge(k: int, i: int) -> bool:
        return sessions[k].post(f"{base}/challenge", json={"purpose": "login"}, timeout=30).status_code == 201

    def password(k: int, i: int) -> bool:
        p, s = people[k], sessions[k]
        step = s.post(f"{base}/login", json={"method": "password", "cccd": p["cccd"], "password": p["password"]},
                      timeout=30)
        if step.status_code != 200:
            return False
        code = accounts.latest_code(gateway_url, p["phone"])
        done = s.post(f"{base}/login/confirm", json={"login_id": step.json()["login_id"], "otp": code}, timeout=30)
        return done.status_code == 200 and bool(done.json().get("access_token"))

    def vneid(k: int, i: int) -> bool:
        s = sessions[k]
        started = s.post(f"{base}/vneid/start", json={"redirect_uri": REDIRECT_URI}, timeout=30)
        if started.status_code != 200:
            return False
        back = s.get(f"{started.json()['authorization_url']}&login_hint={identities[k]}", allow_redirects=False,
                     timeout=30)
        if back.status_code != 302:
            return False
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back.headers["Location"]).query))
        done = s.post(f"{base}/vneid/complete", json={"code": query.get("code", ""), "state": query.get("state", "")},
                      timeout=30)
        return done.status_code == 200 and bool(done.json().get("access_token"))

    failures = Failures()
    for name, fn in (("warm-up challenge", challenge), ("warm-up vneid", vneid)):
        _, _, warm_failed = _measure(clients, 2, fn)  # connections, workers, the provider's keys cached
        failures.add(name, warm_failed)
    measures = (("baseline: challenge", challenge), ("password sign-in (login+code)", password),
                ("VNeID sign-in (start+authorize+complete)", vneid))
    results, n = measure_alternating(
        clients, per_client, measures, failures,
        "{n} sign-ins per measure, {clients} clients in flight, one account and one VNeID identity each", 42)
    (bs, bl, _), (ps, pl, _), (vs, vl, _) = results.values()
    base_rate, pw_rate, vn_rate = n / bs, n / ps, n / vs
    return finish("vneid", f"signins={n} clients={clients} vneid_per_s={vn_rate:.1f} "
                  f"vneid_p50_ms={ms(vl, 50):.1f} vneid_p99_ms={ms(vl, 99):.1f} password_per_s={pw_rate:.1f} "
                  f"password_p50_ms={ms(pl, 50):.1f} baseline_per_s={base_rate:.1f} "
                  f"baseline_p50_ms={ms(bl, 50):.1f} vneid_vs_password={vn_rate / pw_rate:.3f} "
                  f"vneid_vs_baseline={vn_rate / base_rate:.3f}", failures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench vneid")
    parser.add_argument("--quick", action="store_true", help="4 clients x 10 sign-ins per measure")
    parser.add_argument("--clients", type=int, default=None)
    parser.add_argument("--requests", type=int, default=None, help="sign-ins per client per measure")
    parser.add_argument("--gateway-url", default=None, help="a running system with the local stand-ins")
    args = parser.parse_args(argv)
    clients = args.clients or (4 if args.quick else 8)
    per_client = args.requests or (10 if args.quick else 50)
    if args.gateway_url:
        return run(args.gateway_url.rstrip("/"), clients, per_client)
    return on_throwaway_system("vneid", free_port(),
                               {"LOCAL_ADAPTERS": "yes", "RATE_SIGNIN": "10000000", "RATE_REGISTER": "100000",
                                "RATE_OTP": "10000000", "RATE_DEFAULT": "10000000",
                                "IDENTITY_OTP_MAX_PER_PHONE": "10000000", "METRICS_PORT": "0",
                                "VNEID_STANDIN_PORT": str(free_port())},
                               lambda url: run(url, clients, per_client))


if __name__ == "__main__":
    sys.exit(main())
