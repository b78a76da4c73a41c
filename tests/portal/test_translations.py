"""Every text of the portal is in the catalogue, translated into Vietnamese and English,
with the same placeholders."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.pofile import read_po

from portal.translations.extract import messages

HERE = Path(__file__).resolve().parents[2] / "portal" / "translations"
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def catalogue(lang: str) -> dict[str, str]:
    with (HERE / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return {m.id: m.string for m in read_po(f, locale=lang) if m.id}


def test_every_message_is_translated_in_both_languages():
    used = messages()
    assert len(used) > 200  # the extraction found the templates and the code
    for lang in ("vi", "en"):
        texts = catalogue(lang)
        missing = sorted(msgid for msgid in used if not texts.get(msgid))
        assert not missing, f"{lang}: untranslated: {missing[:10]} (run python -m portal.translations.extract)"
        for msgid in used:
            assert set(PLACEHOLDER.findall(msgid)) == set(PLACEHOLDER.findall(texts[msgid])), (lang, msgid)


def test_vietnamese_catalogue_is_really_vietnamese():
    vi = catalogue("vi")
    same = [msgid for msgid, text in vi.items() if text == msgid and re.search(r"[a-z]{4}", msgid)]
    assert len(same) <= 3, same  # a few words (e.g. "Email") may stay the same; whole texts may not
