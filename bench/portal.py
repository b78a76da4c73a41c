"""``python -m bench portal [--quick]``: the citizen portal's search results page and dossier
page, beside the gateway API calls each page makes, in the same run.

Starts the whole system on a throw-away database (and its own RabbitMQ vhost when
``rabbitmqctl`` is at hand) with ``LocalSystem``, and the portal (``python -m portal``) in
front of it, each on a free port. A citizen registers through the API, files one dossier and
signs in to the portal through its pages (password + one-time code). Then, on one keep-alive
connection per side, it times alternating chunks of:

- the results page ``GET /thu-tuc?q=...`` against ``GET /api/v1/procedures?q=...&page_size=10``
  (the page's one API call; the list of fields is cached by the portal), and
- the dossier page ``GET /ho-so/{code}`` against ``GET /api/v1/dossiers/{code}`` followed by
  ``GET /api/v1/dossiers/{code}/payments`` (the page's two API calls, which the portal makes
  side by side).

Last line: ``RESULT portal search_p50_ms=... search_api_p50_ms=... search_p50_ratio=...
search_p99_ms=... search_api_p99_ms=... search_p99_ratio=... dossier_... errors=0``.
Target: the portal adds no more than 30 % to the API's p50 and p99 (ratios <= 1.3).
Anything other than 200 (404 for the payments call while the gateway serves none) is a failure.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable
from pathlib import Path

from bench.support import (
    Failures,
    KeepAlive,
    finish,
    free_port,
    nearest_rank,
    private_vhost,
    throwaway_database,
)
from deploy.launcher import LocalSystem, migrate_and_seed, start_portal, stop_process, wait_http
from portal_common import config

QUERIES = ("khai sinh", "dang ky ket hon", "Đăng ký thường trú", "ho chieu", "giay phep xay dung",
           "thanh lap doanh nghiep", "chung thuc", "ly lich tu phap")


class _Conn(KeepAlive):
    """One keep-alive HTTP connection; ``get`` returns the body and reconnects on error."""

    def get(self, path: str, ok: tuple[int, ...] = (200,)) -> bytes:
        got = self.fetch(path)
        if got is None:
            return b""
        status, body = got
        if status not in ok:
            self.failures.add(f"{path.split('?')[0]} {status}")
        return body


def _portal_session(portal_port: int, gateway_url: str, person: dict) -> str:
    """Sign in to the portal through its pages; returns the session cookie."""
    import requests

    from tests.support.accounts import call

    base = f"http://127.0.0.1:{portal_port}"
    s = requests.Session()
    html = s.get(f"{base}/dang-nhap", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    before = len(call(f"{gateway_url}/api/v1/dev/sms-outbox?phone={person['phone']}")["items"])
    s.post(f"{base}/dang-nhap", data={"csrf_token": token, "id_number": person["cccd"],
                                      "password": person["password"]}, timeout=30)
    deadline = time.monotonic() + 15
    while len(call(f"{gateway_url}/api/v1/dev/sms-outbox?phone={person['phone']}")["items"]) <= before:
        if time.monotonic() > deadline:
            raise RuntimeError("no sign-in code was sent")
        time.sleep(0.1)
    from tests.support.accounts import latest_code

    resp = s.post(f"{base}/dang-nhap/ma-xac-thuc", data={"csrf_token": token, "otp": latest_code(
        gateway_url, person["phone"])}, timeout=30, allow_redirects=False)
    if resp.status_code != 302:
        raise RuntimeError(f"portal sign-in failed: {resp.status_code}")
    return f"portal_sid={s.cookies['portal_sid']}"


def _measure(sides: dict[str, Callable[[int], None]], requests: int, chunk: int = 20) -> dict[str, list[float]]:
    """Alternate the sides in chunks (the starting side swapped every round)."""
    latencies: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    done, round_no = 0, 0
    while done < requests:
        n = min(chunk, requests - done)
        for name in (names if round_no % 2 == 0 else names[::-1]):
            for i in range(done, done + n):
                t0 = time.perf_counter()
                sides[name](i)
                latencies[name].append((time.perf_counter() - t0) * 1000)
        done += n
        round_no += 1
    return latencies


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench portal", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument("--requests", type=int, default=None, help="timed requests per side (default 1000, quick 200)")
    args = parser.parse_args(argv)
    requests = args.requests or (200 if args.quick else 1000)
    from tests.support.accounts import register_citizen
    from tests.support.filings import first_office_filing

    run = uuid.uuid4().hex[:8]
    logs = Path(tempfile.mkdtemp(prefix="bench-portal-"))
    failures = Failures()
    try:
        with (private_vhost(config.amqp_uri(), f"portal_bench_portal_{run}") as amqp,
              throwaway_database(f"portal_bench_portal_{run}") as dsn):
            sut, portal = None, None
            try:
                migrate_and_seed(dsn)
                sut = LocalSystem(dsn, amqp, free_port(), log_dir=logs, extra_env={
                    "LOCAL_ADAPTERS": "yes", "LOG_LEVEL": "WARNING", "RATE_DEFAULT": "1000000",
                    "RATE_LOOKUP": "1000000", "RATE_SIGNIN": "1000000", "RATE_OTP": "1000000",
                    "RATE_REGISTER": "1000000"})
                sut.start()
                sut.wait_ready(timeout=120)
                portal_port = free_port()
                portal = start_portal(sut.gateway_url, portal_port, log_dir=logs)
                wait_http(f"http://127.0.0.1:{portal_port}/health", portal)

                from tests.support.accounts import call

                person = register_citizen(sut.gateway_url)
                filing = first_office_filing(sut.gateway_url, "1.001193", person["full_name"])
                code = call(f"{sut.gateway_url}/api/v1/dossiers", "POST", filing, token=person["access_token"])["code"]
                cookie = _portal_session(portal_port, sut.gateway_url, person)

                web = _Conn(portal_port, failures, {"Cookie": cookie})
                api = _Conn(sut.gateway_port, failures, {"Authorization": f"Bearer {person['access_token']}",
                                                         "Accept": "application/json"})

                def q(i: int) -> str:
                    return urllib.parse.quote(QUERIES[i % len(QUERIES)])

                def web_search(i: int) -> None:
                    web.get(f"/thu-tuc?q={q(i)}")

                def api_search(i: int) -> None:
                    api.get(f"/api/v1/procedures?q={q(i)}&page=1&page_size=10")

                def web_dossier(i: int) -> None:
                    if code.encode() not in web.get(f"/ho-so/{code}"):
                        failures.add("dossier page without its code")

                def api_dossier(i: int) -> None:
                    api.get(f"/api/v1/dossiers/{code}")
                    api.get(f"/api/v1/dossiers/{code}/payments", ok=(200, 404))

                try:
                    _measure({"web": web_search, "api": api_search}, min(100, requests))  # warm-up
                    _measure({"web": web_dossier, "api": api_dossier}, min(100, requests))
                    search = _measure({"web": web_search, "api": api_search}, requests)
                    dossier = _measure({"web": web_dossier, "api": api_dossier}, requests)
                finally:
                    web.close()
                    api.close()
            finally:
                if portal is not None:
                    stop_process(portal)
                if sut is not None:
                    sut.stop()
    finally:
        shutil.rmtree(logs, ignore_errors=True)

    rows = [("search page (portal)", search["web"]), ("search API call", search["api"]),
            ("dossier page (portal)", dossier["web"]), ("dossier API calls (2)", dossier["api"])]
    print(f"\n{requests} requests per row, one client, keep-alive\n")
    print(f"{'path':<26}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, values in rows:
        print(f"{name:<26}{statistics.median(values):>9.2f}{nearest_rank(values, 90):>9.2f}"
              f"{nearest_rank(values, 99):>9.2f}{max(values):>9.2f}")
    figures = []
    verdicts = []
    for name, measured in (("search", search), ("dossier", dossier)):
        p50, api50 = statistics.median(measured["web"]), statistics.median(measured["api"])
        p99, api99 = nearest_rank(measured["web"], 99), nearest_rank(measured["api"], 99)
        figures.append(f"{name}_p50_ms={p50:.2f} {name}_api_p50_ms={api50:.2f} {name}_p50_ratio={p50 / api50:.2f} "
                       f"{name}_p99_ms={p99:.2f} {name}_api_p99_ms={api99:.2f} {name}_p99_ratio={p99 / api99:.2f}")
        verdicts.append(f"{name}: {'met' if p50 / api50 <= 1.3 and p99 / api99 <= 1.3 else 'NOT met'}")
    print(f"\ntarget (portal <= 1.3 x API at p50 and p99): {', '.join(verdicts)}")
    print(f"failed requests: {failures.total}")
    return finish("portal", " ".join(figures), failures)


if __name__ == "__main__":  # pragma: no cover
    import sys

    raise SystemExit(main(sys.argv[1:]))
