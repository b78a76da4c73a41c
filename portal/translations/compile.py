"""Compile the gettext catalogues (``messages.po`` → ``messages.mo``), at start-up or by hand:
``python -m portal.translations.compile``."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

HERE = Path(__file__).resolve().parent
LANGUAGES = ("vi", "en")


def compile_catalogues(root: Path = HERE, out: Path | None = None) -> list[Path]:
    """Write a .mo for each .po (beside it, or under ``out``) unless it is already newer."""
    written = []
    for lang in LANGUAGES:
        po = root / lang / "LC_MESSAGES" / "messages.po"
        mo = (out / lang / "LC_MESSAGES" / "messages.mo") if out else po.with_suffix(".mo")
        mo.parent.mkdir(parents=True, exist_ok=True)
        if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
            with po.open("rb") as f:
                catalog = read_po(f, locale=lang)
            tmp = mo.with_suffix(".mo.tmp")
            with tmp.open("wb") as f:
                write_mo(f, catalog)
            tmp.replace(mo)
        written.append(mo)
    return written


def translations_dir() -> str:
    """The directory Flask-Babel reads: the package's own, or a temporary copy when the
    package is installed read-only."""
    try:
        compile_catalogues()
        return str(HERE)
    except OSError:
        out = Path(tempfile.mkdtemp(prefix="portal-translations-"))
        compile_catalogues(out=out)
        return str(out)


if __name__ == "__main__":
    for path in compile_catalogues():
        print(path)
    sys.exit(0)
