"""Fail a test run that skipped a test for a reason not on the allow-list.

A skip hides a test as quietly as a pass, so only skips for something truly absent on a
machine are allowed, each named in ``tests/allowed_skips.txt``. This reads the ``SKIPPED``
lines of pytest's short summary (``-ra``) in a saved log and exits 1, printing them, when any
skip's reason matches no line of the list. Standard library only: it runs before any venv.

    python3 .ci/check_skips.py LOG [ALLOW_LIST]
"""

from __future__ import annotations

import fnmatch
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALLOW_LIST = ROOT / "tests" / "allowed_skips.txt"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Folded (the default): "SKIPPED [2] tests/x.py:18: reason" or "SKIPPED [1] tests/x.py: reason".
_FOLDED = re.compile(r"^SKIPPED \[\d+\] (?P<where>\S+?): (?P<reason>.*)$")
# Unfolded (--no-fold-skipped): "SKIPPED tests/x.py::test_name - reason".
_UNFOLDED = re.compile(r"^SKIPPED (?P<where>\S+::\S+)(?: - (?P<reason>.*))?$")


def allowed_reasons(path: Path = ALLOW_LIST) -> list[str]:
    """The allow-list's patterns: one reason a line, ``*`` for any text, ``#`` comments."""
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def skip_reasons(log: str) -> list[tuple[str, str]]:
    """``(summary line, reason)`` for every skip reported in a pytest log."""
    out = []
    for raw in log.splitlines():
        line = _ANSI.sub("", raw).rstrip()
        match = _FOLDED.match(line) or _UNFOLDED.match(line)
        if match:
            out.append((line, (match.group("reason") or "").removeprefix("Skipped: ").strip()))
    return out


def unlisted_skips(log: str, allowed: list[str]) -> list[str]:
    """The summary lines of the skips whose reason matches no allowed pattern."""
    return [line for line, reason in skip_reasons(log)
            if not any(fnmatch.fnmatchcase(reason, pattern) for pattern in allowed)]


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    log = Path(argv[0]).read_text(encoding="utf-8", errors="replace")
    allow_list = Path(argv[1]) if len(argv) == 2 else ALLOW_LIST
    bad = unlisted_skips(log, allowed_reasons(allow_list))
    if bad:
        print(f"--- {len(bad)} skip(s) for a reason not in {allow_list}:")
        print("\n".join(bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
