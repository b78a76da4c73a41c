"""``python -m bench <name> [--quick] [...]``: run one benchmark, or list them.

Dispatches to ``bench.<name>.main(argv)`` with the remaining arguments. Without a name, or
with a name that is not a benchmark, prints the list of benchmarks with their one-line
summaries (exit status 0 for ``--help``/no name, 2 for an unknown name).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

import bench

_NOT_BENCHMARKS = {"__main__"}


def available() -> dict[str, str]:
    """Benchmark names and their one-line summaries, read from each module's first line."""
    found: dict[str, str] = {}
    for info in pkgutil.iter_modules([str(Path(bench.__file__).parent)]):
        if info.name in _NOT_BENCHMARKS or info.name.startswith("_") or info.ispkg:
            continue
        source = Path(bench.__file__).parent / f"{info.name}.py"
        summary = ""
        if source.exists():
            text = source.read_text(encoding="utf-8")
            if "def main(" not in text:
                continue
            summary = _first_docstring_line(text)
        found[info.name] = summary
    return dict(sorted(found.items()))


def _first_docstring_line(text: str) -> str:
    for quote in ('"""', "'''"):
        start = text.find(quote)
        if start != -1:
            body = text[start + 3:].strip()
            line = body.splitlines()[0].strip() if body else ""
            # "``python -m bench x [--quick]``: what it measures" -> "what it measures"
            if line.startswith("``") and "``:" in line:
                line = line.split("``:", 1)[1].strip()
            return line
    return ""


def usage(out=sys.stdout) -> None:
    print("usage: python -m bench <name> [--quick] [options]\n\nbenchmarks:", file=out)
    for name, summary in available().items():
        print(f"  {name:<10} {summary}", file=out)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help", "list"):
        usage()
        return 0
    name, rest = args[0], args[1:]
    if name not in available():
        print(f"unknown benchmark {name!r}\n", file=sys.stderr)
        usage(sys.stderr)
        return 2
    module = importlib.import_module(f"bench.{name}")
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
