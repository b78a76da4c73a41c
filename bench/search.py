"""``python -m bench search [--quick]``: procedure search through the gateway over a catalog of
5,000+ procedures, beside the bare SQL query's time in the same run.

Builds a throw-away database (every schema migrated and seeded, then the catalog scaled with
``services.catalog.generate``), starts the whole system on it with ``LocalSystem`` on a free
port (and its own RabbitMQ vhost when ``rabbitmqctl`` is at hand), then, with a single client
on one keep-alive connection, times a mix of searches a citizen would type (real names with
and without diacritics, word order changed, typos, filler words, filters, pages). The baseline
is the same searches run straight on PostgreSQL (``services.catalog.application.browsing.search``, the code
the service runs), in alternating chunks with the gateway's so that outside load hits both
alike. Everything it started is stopped and dropped at the end.

Last line: ``RESULT search p50_ms=... sql_p50_ms=... p50_ratio=... p99_ms=... sql_p99_ms=...
p99_ratio=... rps=... sql_rps=... rps_ratio=... errors=0``: each gateway figure beside the bare SQL one
and their ratio (what HTTP + RPC add). Target: p99 <= 20 ms through the gateway.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
import urllib.parse
import uuid
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
from deploy.launcher import LocalSystem, migrate_and_seed
from portal_common import config
from portal_common.db import Database

QUERIES: list[dict] = [
    {"q": "dang ky khai sinh"}, {"q": "Đăng ký khai sinh"}, {"q": "DANG KY KHAI SINH"},
    {"q": "khai sinh dang ky"}, {"q": "dang ky khai sihn"}, {"q": "đăng ký kết hôn"},
    {"q": "cap giay phep xay dung nha o rieng le"}, {"q": "thành lập doanh nghiệp"},
    {"q": "ho chieu"}, {"q": "giấy phép lái xe"}, {"q": "tro cap that nghiep"},
    {"q": "dang ky thuong tru"}, {"q": "ly lich tu phap"}, {"q": "the can cuoc"},
    {"q": "chứng thực", "field": "chung_thuc"}, {"q": "giay phep", "online": "full"},
    {"q": "bao hiem xa hoi", "target": "citizen"}, {"q": "dat dai", "level": "province"},
    {"online": "full"}, {"field": "doanh_nghiep", "page": 2}, {"q": "1.001193"},
    {"q": "dang ky", "agency": "P51-STC"}, {"q": "thủ tục cấp hộ chiếu"}, {"q": "dang ki ket hon"},
]


class _Http(KeepAlive):
    """One keep-alive connection to the gateway: one search per call; an answer other than
    200, or a broken connection (then opened again), is added to ``failures``."""

    def __call__(self, params: dict) -> None:
        got = self.fetch("/api/v1/procedures?" + urllib.parse.urlencode(params))
        if got is not None and got[0] != 200:
            self.failures.add(f"{got[0]} {got[1][:80]!r}")


class _Sql:
    """The service's own search function on one connection of its own: the bare query."""

    def __init__(self, dsn: str):
        from services.catalog.application import browsing

        self.search = browsing.search
        self.db = Database(dsn, "catalog", size=1)

    def __call__(self, params: dict) -> None:
        params = dict(params)
        q, page = params.pop("q", None), params.pop("page", 1)
        self.search(self.db, q, params, page, 20)

    def close(self) -> None:
        self.db.close()


def _measure(sides: dict, requests: int, chunk: int = 24) -> dict[str, tuple[list[float], float]]:
    """Alternate the sides in chunks of the same searches (the starting side swapped every
    round), so load from other work on the machine falls on both alike. Returns each side's
    latencies (ms) and its rate (searches per second of its own time)."""
    latencies: dict[str, list[float]] = {name: [] for name in sides}
    spent = dict.fromkeys(sides, 0.0)
    names = list(sides)
    done, round_no = 0, 0
    while done < requests:
        n = min(chunk, requests - done)
        order = names if round_no % 2 == 0 else names[::-1]
        for name in order:
            run = sides[name]
            for i in range(done, done + n):
                t0 = time.perf_counter()
                run(QUERIES[i % len(QUERIES)])
                elapsed = time.perf_counter() - t0
                latencies[name].append(elapsed * 1000)
                spent[name] += elapsed
        done += n
        round_no += 1
    return {name: (latencies[name], len(latencies[name]) / spent[name]) for name in sides}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench search", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument("--procedures", type=int, default=5200, help="catalog size (default 5200)")
    parser.add_argument("--requests", type=int, default=None, help="timed requests (default 2000, quick 300)")
    args = parser.parse_args(argv)
    requests = args.requests or (300 if args.quick else 2000)

    run = uuid.uuid4().hex[:8]
    logs = Path(tempfile.mkdtemp(prefix="bench-search-"))
    try:
        with (private_vhost(config.amqp_uri(), f"portal_bench_search_{run}") as amqp,
              throwaway_database(f"portal_bench_search_{run}") as dsn):
            sut = None
            try:
                t0 = time.perf_counter()
                migrate_and_seed(dsn)
                from services.catalog import generate

                added = generate.load(dsn, args.procedures)
                print(f"catalog: {args.procedures} procedures ({added} generated) in {time.perf_counter() - t0:.1f}s")
                sut = LocalSystem(dsn, amqp, free_port(), log_dir=logs,
                                  extra_env={"RATE_DEFAULT": "1000000", "LOG_LEVEL": "WARNING"})
                sut.start()
                sut.wait_ready(timeout=120)
                failures = Failures()
                sides = {"gateway": _Http(sut.gateway_port, failures), "sql": _Sql(dsn)}
                try:
                    _measure(sides, min(200, requests))  # warm up caches and connections
                    measured = _measure(sides, requests)
                finally:
                    for side in sides.values():
                        side.close()
                (http_ms, rps), (sql_ms, sql_rps) = measured["gateway"], measured["sql"]
            finally:
                if sut is not None:
                    sut.stop()
    finally:
        shutil.rmtree(logs, ignore_errors=True)

    rows = [("gateway (HTTP + RPC + SQL)", http_ms), ("bare SQL (same searches)", sql_ms)]
    print(f"\n{requests} searches, single client, {len(QUERIES)} query shapes\n")
    print(f"{'path':<28}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, values in rows:
        print(f"{name:<28}{statistics.median(values):>9.2f}{nearest_rank(values, 90):>9.2f}"
              f"{nearest_rank(values, 99):>9.2f}{max(values):>9.2f}")
    p50, p99, sql_p50, sql_p99 = (statistics.median(http_ms), nearest_rank(http_ms, 99), statistics.median(sql_ms),
                                  nearest_rank(sql_ms, 99))
    print(f"\nthroughput: {rps:.0f} requests/s through the gateway, {sql_rps:.0f}/s bare SQL; "
          f"target p99 <= 20 ms: {'met' if p99 <= 20 else 'NOT met'}")
    print(json.dumps({"p50_ms": round(p50, 2), "p99_ms": round(p99, 2), "rps": round(rps, 1),
                      "sql_p50_ms": round(sql_p50, 2), "sql_p99_ms": round(sql_p99, 2),
                      "sql_rps": round(sql_rps, 1)}))
    print(f"failed searches: {failures.total}")
    return finish("search", f"p50_ms={p50:.2f} sql_p50_ms={sql_p50:.2f} p50_ratio={p50 / sql_p50:.2f} "
                  f"p99_ms={p99:.2f} sql_p99_ms={sql_p99:.2f} p99_ratio={p99 / sql_p99:.2f} "
                  f"rps={rps:.1f} sql_rps={sql_rps:.1f} rps_ratio={rps / sql_rps:.2f}", failures)


if __name__ == "__main__":  # pragma: no cover
    import sys

    raise SystemExit(main(sys.argv[1:]))
