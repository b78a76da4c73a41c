"""``bench rpc`` calls a real service on the broker both ways and fails on a wrong answer."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from bench import rpc

pytestmark = pytest.mark.integration


def test_both_ways_are_measured_side_by_side_with_their_ratio(amqp_uri, monkeypatch, capsys):
    monkeypatch.setenv("AMQP_URI", amqp_uri.rsplit("/", 1)[0] + "/")
    assert rpc.main(["--slices", "1", "--calls", "30"]) == 0
    out = capsys.readouterr().out
    result = out.strip().splitlines()[-1]
    assert result.startswith("RESULT rpc calls=60 "), result  # 30 a way (the 100 that warm up aside)
    figures = dict(re.findall(r"(\w+)=([0-9.a-z]+)", result))
    for key in ("p50_ms", "baseline_p50_ms", "per_s", "baseline_per_s", "rate_ratio"):
        assert float(figures[key]) > 0, key
    for key in ("broker_ms", "baseline_broker_ms", "broker_ratio"):  # CPU in ticks: 60 calls may read 0
        assert key in figures, key
    assert "baseline: persistent" in out and "transient" in out


def test_a_wrong_answer_fails_the_run_without_a_ratio(amqp_uri, monkeypatch, capsys):
    real = rpc.ClusterRpcProxy

    class Tampered:
        """The real client, its answers changed once the service is up."""

        def __init__(self, config, timeout):
            self._client, self._tamper = real(config, timeout=timeout), timeout == 10

        def __enter__(self):
            proxy = self._client.__enter__()
            if not self._tamper:
                return proxy
            return SimpleNamespace(bench_echo=SimpleNamespace(echo=lambda v: {**proxy.bench_echo.echo(v), "x": 1}))

        def __exit__(self, *exc):
            return self._client.__exit__(*exc)

    monkeypatch.setattr(rpc, "ClusterRpcProxy", Tampered)
    monkeypatch.setenv("AMQP_URI", amqp_uri.rsplit("/", 1)[0] + "/")
    assert rpc.main(["--slices", "1", "--calls", "5"]) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("FAILED rpc errors=") and "ratio" not in last
