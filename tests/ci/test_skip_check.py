"""The CI skip check: a skip for a reason on tests/allowed_skips.txt passes, any other fails
the run and is printed; the reasons the tests state today are all on the list."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "check_skips.py"

_spec = importlib.util.spec_from_file_location("check_skips", SCRIPT)
check_skips = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_skips)

LOG = """\
tests/router/test_broker_restart.py s                                     [ 50%]
=========================== short test summary info ============================
SKIPPED [1] tests/router/test_broker_restart.py:32: rabbitmq-server is not installed: no private broker node to restart
SKIPPED [3] tests/eventstore/conftest.py:40: the database user portal is not a superuser on this machine's PostgreSQL
{extra}FAILED tests/gateway/test_documents.py::test_x - AssertionError
1 failed, 10 passed, 4 skipped in 1.00s
"""


def _run(tmp_path: Path, log: str) -> subprocess.CompletedProcess:
    path = tmp_path / "test.log"
    path.write_text(log)
    return subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True)


def test_allowed_skips_pass(tmp_path):
    result = _run(tmp_path, LOG.format(extra=""))
    assert result.returncode == 0, result.stdout
    assert result.stdout == ""


def test_a_skip_for_any_other_reason_fails_and_is_printed(tmp_path):
    extra = ("SKIPPED [1] tests/dossier/test_http.py:22: could not import 'tests.support.accounts': boom\n"
             "\x1b[33mSKIPPED\x1b[0m [2] tests/x.py: not written yet\n")
    result = _run(tmp_path, LOG.format(extra=extra))
    assert result.returncode == 1
    assert "tests/dossier/test_http.py:22: could not import" in result.stdout
    assert "SKIPPED [2] tests/x.py: not written yet" in result.stdout
    assert "broker_restart" not in result.stdout


def test_unfolded_skip_lines_are_read_too():
    log = "SKIPPED tests/a.py::test_b - Skipped: rabbitmq-server is not installed: no private broker node to crash\n" \
          "SKIPPED tests/a.py::test_c\n"
    assert check_skips.skip_reasons(log) == [
        (log.splitlines()[0], "rabbitmq-server is not installed: no private broker node to crash"),
        (log.splitlines()[1], ""),
    ]
    assert check_skips.unlisted_skips(log, check_skips.allowed_reasons()) == ["SKIPPED tests/a.py::test_c"]


def test_every_skip_reason_in_the_tests_is_on_the_list():
    """A new ``pytest.skip`` must either go or be listed, not fail CI on the first machine that lacks it."""
    allowed = check_skips.allowed_reasons()
    reasons = []
    for path in (ROOT / "tests").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "importorskip" not in text or path == Path(__file__), f"{path}: import it plainly"
        for literal in re.findall(r"pytest\.skip\(\s*f?\"([^\"]*)\"", text):
            reasons.append((path, re.sub(r"\{[^}]*\}", "*", literal)))
    assert reasons
    for path, reason in reasons:
        assert reason in allowed, f"{path.relative_to(ROOT)}: skip reason {reason!r} is not in tests/allowed_skips.txt"
