"""The template helpers that replace Jinja's gettext and Flask's url_for for speed: they must
answer exactly what those would, escape what they insert, and never keep a visitor's path."""

from __future__ import annotations

import pytest
from flask import render_template_string, session, url_for

from portal import app as portal_app_module
from portal.app import create_app
from portal.config import Settings


@pytest.fixture(scope="module")
def app():
    return create_app(Settings(gateway_url="http://127.0.0.1:9"))


def render(app, source: str, lang: str = "vi", **context) -> str:
    with app.test_request_context("/thu-tuc"):
        session["lang"] = lang
        return render_template_string(source, **context)


def test_a_message_with_values_is_translated_and_its_values_escaped(app):
    out = render(app, '{{ _("%(total)s procedures found", total=total) }}', total="<b>7</b>")
    assert out == "Tìm thấy &lt;b&gt;7&lt;/b&gt; thủ tục"


def test_each_language_keeps_its_own_text(app):
    source = '{{ _("%(total)s procedures found", total=3) }}|{{ _("Search") }}'
    vi, en, vi_again = render(app, source), render(app, source, "en"), render(app, source)
    assert vi == vi_again and vi.startswith("Tìm thấy 3 thủ tục")
    assert en.startswith("3 procedures found") and en.endswith("|Search")


def test_a_message_without_values_reads_as_jinja_would_format_it(app):
    # Jinja's newstyle gettext always applies ``%``: "%%" reads as "%".
    assert render(app, '{{ _("100%% done") }}') == "100% done"


def test_links_match_url_for_and_a_visitors_path_is_never_kept(app):
    portal_app_module._LINKS.clear()
    out = render(app, "{{ url_for('catalog.search') }} {{ url_for('catalog.procedure', code='1.001193') }} "
                      "{{ url_for('switch_language', lang='en', next='/thu-tuc?q=x') }}")
    with app.test_request_context("/"):
        expected = " ".join([url_for("catalog.search"), url_for("catalog.procedure", code="1.001193"),
                             url_for("switch_language", lang="en", next="/thu-tuc?q=x")])
    assert out == expected
    kept = {key[1] for key in portal_app_module._LINKS}
    assert kept == {"catalog.search", "catalog.procedure"}


def test_links_are_built_for_the_script_root_they_are_served_under(app):
    source = "{{ url_for('catalog.search') }}"
    with app.test_request_context("/thu-tuc", base_url="http://localhost/cong"):
        under_prefix = render_template_string(source)
    with app.test_request_context("/thu-tuc"):
        at_root = render_template_string(source)
    assert (under_prefix, at_root) == ("/cong/thu-tuc", "/thu-tuc")
