"""The rule every benchmark ends by: a run that met a failed request prints no ratio."""

from __future__ import annotations

import threading

from bench.support import Failures, finish


def test_a_clean_run_prints_its_result_line(capsys):
    assert finish("gateway", "ruled_rps=10 bare_rps=20 rps_ratio=0.500", Failures()) == 0
    assert capsys.readouterr().out == "RESULT gateway ruled_rps=10 bare_rps=20 rps_ratio=0.500 errors=0\n"


def test_any_failure_prints_failed_with_the_count_and_kinds_and_no_ratio(capsys):
    failures = Failures()
    failures.add("ruled: 503 revocations_unavailable", 4800)
    failures.add("bare: ConnectionError")
    failures.add("nothing", 0)
    assert finish("gateway", "rps_ratio=1.149", failures) == 1
    out = capsys.readouterr().out
    assert out == "FAILED gateway errors=4801 (ruled: 503 revocations_unavailable x4800, bare: ConnectionError x1)\n"
    assert "RESULT" not in out and "ratio" not in out


def test_a_plain_count_works_too(capsys):
    assert finish("rebuild", "ratio=0.4", 2) == 1
    assert capsys.readouterr().out == "FAILED rebuild errors=2\n"
    assert finish("rebuild", "ratio=0.4", 0) == 0


def test_failures_are_counted_from_many_threads():
    failures = Failures()
    threads = [threading.Thread(target=lambda: [failures.add("429 rate_limited") for _ in range(1000)])
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures.total == 8000 and failures.kinds() == {"429 rate_limited": 8000}
