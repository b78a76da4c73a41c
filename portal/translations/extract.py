"""Refresh the catalogues from the code: ``python -m portal.translations.extract``.

Every ``_()`` / ``_l()`` in ``portal/**.py`` and every ``_()`` in the templates becomes a
msgid (English); Vietnamese translations already written are kept, new ones are left empty
(``tests/portal`` fails until they are filled in); the English catalogue repeats the msgid.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent
METHODS = [("**/templates/**.html", "jinja2.ext:babel_extract"), ("**.py", "python")]
KEYWORDS = {"_": None, "gettext": None, "_l": None, "lazy_gettext": None}


def messages() -> dict[str, list[tuple[str, int]]]:
    """msgid -> where it is used."""
    found: dict[str, list[tuple[str, int]]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
            str(PACKAGE), METHODS, keywords=KEYWORDS, options_map={"**.html": {"extensions": "jinja2.ext.do"}}):
        if isinstance(message, str) and message:
            found.setdefault(message, []).append((filename, lineno))
    return found


def refresh() -> list[str]:
    """Rewrite both catalogues; returns the msgids still without a Vietnamese translation."""
    found = messages()
    missing = []
    for lang in ("vi", "en"):
        po = HERE / lang / "LC_MESSAGES" / "messages.po"
        old = read_po(po.open("rb"), locale=lang) if po.exists() else Catalog(locale=lang)
        new = Catalog(locale=lang, project="portal", charset="utf-8")
        for msgid, places in sorted(found.items()):
            prior = old.get(msgid)
            text = prior.string if prior is not None and prior.string else ("" if lang == "vi" else msgid)
            if lang == "vi" and not text:
                missing.append(msgid)
            new.add(msgid, text, locations=places)
        po.parent.mkdir(parents=True, exist_ok=True)
        with po.open("wb") as f:
            write_po(f, new, width=0, omit_header=False, sort_output=True)
    return missing


if __name__ == "__main__":
    todo = refresh()
    for msgid in todo:
        print(f"untranslated: {msgid}")
    sys.exit(1 if todo else 0)
