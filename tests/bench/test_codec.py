"""``bench codec`` times both codecs on a submission's messages and fails when they disagree."""

from __future__ import annotations

import re

from bench import codec
from portal_common import jsoncodec


def test_each_message_is_timed_both_ways_with_its_speed_up(capsys):
    assert codec.main(["--rounds", "1", "--loops", "5"]) == 0
    out = capsys.readouterr().out
    result = out.strip().splitlines()[-1]
    assert result.startswith("RESULT codec "), result
    figures = dict(re.findall(r"(\w+)=([0-9.]+)", result))
    for kind in ("rpc_request_decode", "rpc_reply_decode", "event_decode", "event_encode", "submission"):
        for suffix in ("_us", "_base_us", "_speedup"):
            assert float(figures[kind + suffix]) > 0, kind + suffix
    assert "one submission" in out


def test_a_message_decoded_differently_fails_the_run_without_a_ratio(capsys, monkeypatch):
    real = jsoncodec.message_loads
    monkeypatch.setattr(jsoncodec, "message_loads",
                        lambda body: {**real(body), "extra": 1} if b"P01-BHXH" in bytes(body) else real(body))
    assert codec.main(["--rounds", "1", "--loops", "2"]) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("FAILED codec errors=") and "speedup" not in last
