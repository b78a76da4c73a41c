"""``bench pool`` files through its three ways on the real PostgreSQL and counts what fails."""

from __future__ import annotations

import re

from bench import pool


def test_every_way_files_and_the_result_gives_each_figure_with_its_ratio(capsys):
    assert pool.main(["--filings", "3", "--slices", "2"]) == 0
    out = capsys.readouterr().out
    result = out.strip().splitlines()[-1]
    assert result.startswith("RESULT pool filings=6 "), result
    figures = dict(re.findall(r"(\w+)=([0-9.]+)", result))
    for key in ("new_p50_ms", "kept_p50_ms", "new_cpu_ms", "kept_cpu_ms", "ahead_p50_ms", "ahead_cpu_ms",
                "ratio", "cpu_ratio", "ahead_ratio"):
        assert float(figures[key]) > 0, key
    assert "kept open (baseline)" in out and "opened for the filing" in out and "opened ahead, first use" in out


def test_a_filing_that_fails_fails_the_run_without_a_ratio(capsys, monkeypatch):
    real, calls = pool.file_one, {"n": 0}

    def third_fails(repo, i, agency):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("refused")
        real(repo, i, agency)

    monkeypatch.setattr(pool, "file_one", third_fails)
    assert pool.main(["--filings", "2", "--slices", "1"]) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("FAILED pool errors=1") and "ratio" not in last


def test_out_of_range_sizes_are_refused(capsys):
    for argv in (["--filings", "0"], ["--slices", "101"]):
        try:
            pool.main(argv)
        except SystemExit as stopped:
            assert stopped.code == 2
        else:
            raise AssertionError(f"{argv} was accepted")
    assert "--filings between 1 and 10000" in capsys.readouterr().err
