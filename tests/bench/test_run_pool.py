"""The thread-pool runner the submit, payment and scale benchmarks share."""

from __future__ import annotations

from bench.submit import _run
from bench.support import nearest_rank, run_pool


def test_every_item_is_timed_and_false_or_raising_calls_count_as_failures():
    seen: list[int] = []

    def one(i: int) -> bool:
        seen.append(i)
        if i == 3:
            raise ValueError("broken")
        return i % 2 == 0

    seconds, latencies, failed = run_pool([0, 1, 2, 3, 4], 2, one)
    assert sorted(seen) == [0, 1, 2, 3, 4]
    assert len(latencies) == 5 and seconds >= 0
    assert failed == 2  # 1 returned false, 3 raised


def test_submit_runs_its_numbered_calls_through_the_same_pool():
    seen: list[int] = []
    _, latencies, failed = _run(4, 4, lambda i: seen.append(i) is None and i != 2)
    assert sorted(seen) == [0, 1, 2, 3] and len(latencies) == 4 and failed == 1


def test_nearest_rank_picks_a_sample_not_an_interpolation():
    assert nearest_rank([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert nearest_rank([1.0, 2.0], 99) == 2.0
    assert nearest_rank([1.0, 10.0], 40) == 1.0


def test_keep_alive_reads_answers_and_counts_a_refused_connection():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", "from tests.bench.test_run_pool import _keep_alive_check; "
                           "_keep_alive_check()"], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def _keep_alive_check() -> None:
    """Run in a fresh interpreter: a suite that has loaded eventlet turns the server thread green."""
    import http.server
    import threading

    from bench.support import Failures, KeepAlive, free_port

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            body = self.path.encode()
            self.send_response(200 if self.path == "/ok" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    failures = Failures()
    try:
        client = KeepAlive(server.server_address[1], failures)
        assert client.fetch("/ok") == (200, b"/ok")
        assert client.fetch("/missing") == (404, b"/missing")
        client.close()
        assert failures.total == 0
    finally:
        server.shutdown()
        server.server_close()
    gone = KeepAlive(free_port(), failures)
    assert gone.fetch("/ok") is None
    assert failures.total == 1 and "ConnectionRefusedError" in failures.kinds()
