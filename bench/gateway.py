"""What the gateway's rules cost per request: a fully ruled ``@api`` endpoint against a bare one.

Starts one ``nameko run`` process with two endpoints returning the same small JSON body:
``/b/bare`` (no auth, no schemas, no rate limit: the baseline, nameko's web server plus the
gateway's request id, headers and problem handling) and ``/b/ruled`` (bearer token verified
locally, query validated with marshmallow, per-client and per-account rate limits, response
schema, access log). Drives each with the same closed loop of keep-alive clients, in alternating
one-second slices (so other load on the machine hits both alike), and reports throughput and
latency percentiles, and their ratio.

Tokens are verified exactly as in the gateway, against a key set read from a file instead of
the identity service, and with identity's revocation list read as empty (there is no identity
here; without it every signed-in request would be a 503 ``revocations_unavailable``). Every
answer other than a 200 is a failed request, and a run with any fails (see ``bench.support.finish``).

``python -m bench gateway [--quick] [--seconds S] [--clients N]``. Last line:
``RESULT gateway ruled_rps=... bare_rps=... rps_ratio=... ruled_p50_ms=... bare_p50_ms=...
p50_ratio=... ruled_p99_ms=... bare_p99_ms=... p99_ratio=... errors=0``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from marshmallow import Schema, fields, validate

from bench.support import Failures, finish, free_port
from gateway.http.route import ApiCall, api
from gateway.http.tokens import TokenKeys

ROOT = Path(__file__).resolve().parent.parent

if os.environ.get("BENCH_JWKS_FILE"):  # inside the benchmark's service process only
    def _jwks_from_file(config: dict) -> dict:
        with open(os.environ["BENCH_JWKS_FILE"], encoding="utf-8") as fh:
            return json.load(fh)

    TokenKeys._fetch_jwks = staticmethod(_jwks_from_file)
    TokenKeys._fetch_revocations = staticmethod(lambda config: {})  # nothing revoked; still checked


class Query(Schema):
    q = fields.String(load_default=None, validate=validate.Length(max=200))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10_000))


class Answer(Schema):
    q = fields.String(allow_none=True)
    page = fields.Integer()
    items = fields.List(fields.Integer())


class BenchService:
    name = "gateway"

    @api("GET", "/b/bare", summary="baseline")
    def bare(self, call: ApiCall):
        return {"q": "x", "page": 2, "items": [1, 2, 3]}

    @api("GET", "/b/ruled", summary="every rule", auth=("citizen",), query=Query, response=Answer,
         rate_limit="lookup")
    def ruled(self, call: ApiCall):
        return {"q": call.query["q"], "page": call.query["page"], "items": [1, 2, 3]}


def _drive(url: str, headers: dict[str, str], seconds: float, clients: int,
           failures: Failures) -> tuple[float, list[float]]:
    """A closed loop of ``clients`` keep-alive clients for ``seconds``: the rate and every
    latency; each answer other than a 200 is added to ``failures`` by status and problem code."""
    import requests

    latencies: list[list[float]] = [[] for _ in range(clients)]
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        session = requests.Session()
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            try:
                resp = session.get(url, headers=headers, timeout=30)
            except requests.RequestException as exc:
                failures.add(type(exc).__name__)
                continue
            latencies[i].append(time.perf_counter() - t0)
            if resp.status_code != 200:
                failures.add(f"{resp.status_code} {_problem_code(resp)}")

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    flat = [x for per in latencies for x in per]
    return len(flat) / elapsed, flat


def _problem_code(resp) -> str:
    try:
        return str(resp.json().get("code"))
    except ValueError:
        return resp.text[:40]


def _pct(values: list[float], p: float) -> float:
    """The ``p`` (a fraction) quantile in milliseconds, by rank (not ``support.percentile``, which interpolates)."""
    ordered = sorted(values)
    return ordered[min(int(p * len(ordered)), len(ordered) - 1)] * 1000


def main(argv: list[str] | None = None) -> int:
    import jwt
    import requests
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    parser = argparse.ArgumentParser(prog="python -m bench gateway")
    parser.add_argument("--quick", action="store_true", help="5 s per endpoint")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args(argv)
    seconds = args.seconds or (5.0 if args.quick else 20.0)

    key = Ed25519PrivateKey.generate()
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "bench", "alg": "EdDSA"})
    now = int(time.time())
    token = jwt.encode({"sub": "acct-bench", "role": "citizen", "idn": "001099000001", "jti": uuid.uuid4().hex,
                        "iss": "portal-identity", "aud": "portal", "iat": now, "exp": now + 3600}, key,
                       algorithm="EdDSA", headers={"kid": "bench"})
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
        port = free_port()
        (Path(tmp) / "config.yml").write_text(f"WEB_SERVER_ADDRESS: 127.0.0.1:{port}\nmax_workers: 50\n"
                                              "LOGGING:\n  version: 1\n  root:\n    level: WARNING\n")
        env = {**os.environ, "BENCH_JWKS_FILE": str(Path(tmp) / "jwks.json"), "RATE_LOOKUP": "100000000",
               "PYTHONWARNINGS": "ignore"}
        proc = subprocess.Popen([sys.executable, "-m", "nameko", "run", "--config", str(Path(tmp) / "config.yml"),
                                 "bench.gateway:BenchService"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    requests.get(f"{base}/b/bare", timeout=1)
                    break
                except requests.ConnectionError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        print("the benchmark service did not start", file=sys.stderr)
                        return 1
                    time.sleep(0.2)
            auth = {"Authorization": f"Bearer {token}"}
            bare_err, ruled_err = Failures(), Failures()
            _drive(f"{base}/b/ruled?q=khai%20sinh&page=2", auth, 1.0, args.clients, ruled_err)  # warm up both
            _drive(f"{base}/b/bare", {}, 1.0, args.clients, bare_err)
            # alternate one-second slices, so load from elsewhere on the machine hits both alike
            bare_lat, ruled_lat = [], []
            for _ in range(int(seconds)):
                _, lat = _drive(f"{base}/b/bare", {}, 1.0, args.clients, bare_err)
                bare_lat += lat
                _, lat = _drive(f"{base}/b/ruled?q=khai%20sinh&page=2", auth, 1.0, args.clients, ruled_err)
                ruled_lat += lat
            bare_rps, ruled_rps = len(bare_lat) / int(seconds), len(ruled_lat) / int(seconds)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    rows = [("bare @api (baseline)", bare_rps, bare_lat, bare_err), ("ruled @api", ruled_rps, ruled_lat, ruled_err)]
    print(f"gateway rules cost: {args.clients} keep-alive clients, {seconds:.0f} s per endpoint, client and "
          "server on this machine")
    print(f"{'endpoint':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name, rps, lat, err in rows:
        print(f"{name:<22}{rps:>10.0f}{_pct(lat, .5):>10.2f}{_pct(lat, .99):>10.2f}{err.total:>8}")
    r50, b50 = _pct(ruled_lat, .5), _pct(bare_lat, .5)
    r99, b99 = _pct(ruled_lat, .99), _pct(bare_lat, .99)
    ruled_mean, bare_mean = statistics.mean(ruled_lat) * 1000, statistics.mean(bare_lat) * 1000
    print(f"mean latency: ruled {ruled_mean:.2f} ms, bare {bare_mean:.2f} ms")
    failures = Failures()
    for side, err in (("ruled", ruled_err), ("bare", bare_err)):
        for kind, count in err.kinds().items():
            failures.add(f"{side}: {kind}", count)
    return finish("gateway", f"ruled_rps={ruled_rps:.0f} bare_rps={bare_rps:.0f} rps_ratio={ruled_rps / bare_rps:.3f} "
                  f"ruled_p50_ms={r50:.2f} bare_p50_ms={b50:.2f} p50_ratio={r50 / b50:.3f} "
                  f"ruled_p99_ms={r99:.2f} bare_p99_ms={b99:.2f} p99_ratio={r99 / b99:.3f}", failures)


if __name__ == "__main__":
    sys.exit(main())
