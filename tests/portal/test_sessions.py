"""Sessions in PostgreSQL (``PORTAL_SESSION_DATABASE_URL``): every portal process serves the same
citizen, a restart signs nobody out, the table never holds a usable session id, and a session
store that cannot be reached answers 503 instead of a stack trace. Real PostgreSQL and, for the
signed-in journey, the real gateway."""

from __future__ import annotations

import hashlib
import time

import psycopg2
import pytest

from portal.app import create_app
from portal.config import Settings
from portal.security import renew_session
from portal.sessions import COOKIE, DatabaseSessions
from tests.portal.test_pages import page, signed_in_client

pytestmark = [pytest.mark.integration]
UNUSED_GATEWAY = "http://127.0.0.1:9"  # the session-only routes below never call it


def _app(database_url: str, gateway_url: str = UNUSED_GATEWAY, ttl: int = 7200):
    """A portal process's application, with two routes of the test's own that read and write
    its session."""
    from flask import request, session

    app = create_app(Settings(gateway_url=gateway_url, session_ttl=ttl, session_database_url=database_url))

    @app.get("/_test/set")
    def _set():
        session["value"] = request.args["v"]
        return "ok"

    @app.get("/_test/get")
    def _get():
        return session.get("value") or "-"

    @app.get("/_test/renew")
    def _renew():
        renew_session()
        return "renewed"

    return app


def _with_cookie(app, sid: str):
    client = app.test_client()
    client.set_cookie(COOKIE, sid)
    return client


def _sid(client) -> str:
    return client.get_cookie(COOKIE).value


def _rows(database_url: str) -> list[tuple[bytes, str]]:
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT sid_hash, data::text FROM portal.sessions")
        return [(bytes(h), d) for h, d in cur.fetchall()]


def test_two_processes_share_a_session_and_a_restart_keeps_it(database_url):
    first, second = _app(database_url), _app(database_url)
    client = first.test_client()
    assert client.get("/_test/set?v=nộp-hồ-sơ").status_code == 200
    sid = _sid(client)
    assert _with_cookie(second, sid).get("/_test/get").get_data(as_text=True) == "nộp-hồ-sơ"
    restarted = _app(database_url)  # a new process: nothing in memory
    assert _with_cookie(restarted, sid).get("/_test/get").get_data(as_text=True) == "nộp-hồ-sơ"
    # the table holds the id's digest, never the id
    digest = hashlib.sha256(sid.encode()).digest()
    rows = _rows(database_url)
    assert digest in [h for h, _ in rows] and not any(sid in d or sid.encode() in h for h, d in rows)


def test_a_renewed_id_leaves_the_old_one_worthless_in_every_process(database_url):
    first, second = _app(database_url), _app(database_url)
    client = first.test_client()
    client.get("/_test/set?v=kept")
    old = _sid(client)
    assert client.get("/_test/renew").get_data(as_text=True) == "renewed"
    new = _sid(client)
    assert new != old
    assert _with_cookie(second, old).get("/_test/get").get_data(as_text=True) == "-"
    assert hashlib.sha256(old.encode()).digest() not in [h for h, _ in _rows(database_url)]


def test_an_idle_session_ends_after_its_time(database_url):
    short = _app(database_url, ttl=1)
    client = short.test_client()
    client.get("/_test/set?v=soon-gone")
    sid = _sid(client)
    assert _with_cookie(short, sid).get("/_test/get").get_data(as_text=True) == "soon-gone"
    time.sleep(1.5)
    fresh = _with_cookie(short, sid)
    assert fresh.get("/_test/get").get_data(as_text=True) == "-"


@pytest.mark.filterwarnings("ignore:The 'portal_sid' cookie is too large")  # sent on purpose
@pytest.mark.parametrize("cookie", ["", "x", "' OR 1=1 --", "a" * 5000, "\x00\x01", "é" * 40])
def test_a_forged_or_junk_cookie_gets_a_new_empty_session(database_url, cookie):
    app = _app(database_url)
    client = _with_cookie(app, cookie)
    resp = client.get("/_test/get")
    assert resp.status_code == 200 and resp.get_data(as_text=True) == "-"
    client.get("/_test/set?v=mine")
    assert _sid(client) != cookie and len(_sid(client)) == 43


def test_an_unreachable_session_store_answers_503_with_retry_after(database_url):
    app = _app(database_url)
    store: DatabaseSessions = app.session_interface
    client = app.test_client()
    client.get("/_test/set?v=before")
    sid = _sid(client)
    store._pool.closeall()  # the database went away under the running process
    for path in ("/_test/get", "/_test/set?v=after", "/"):
        resp = _with_cookie(app, sid).get(path)
        assert resp.status_code == 503 and resp.headers["Retry-After"] == "30", path
        assert "Traceback" not in resp.get_data(as_text=True)
    assert app.test_client().get("/health").status_code == 200  # the process itself is alive
    assert _with_cookie(_app(database_url), sid).get("/_test/get").get_data(as_text=True) == "before"


@pytest.mark.e2e
def test_a_citizen_signed_in_on_one_process_is_signed_in_on_the_other_until_signing_out(
        database_url, gateway_url):
    first, second = _app(database_url, gateway_url), _app(database_url, gateway_url)
    client, person = signed_in_client(first, gateway_url)
    sid = _sid(client)
    other = _with_cookie(second, sid)
    account = page(other, "/tai-khoan")  # signed in there too: not sent to the sign-in page
    assert person["cccd"] in account or person["full_name"] in account
    from tests.portal.conftest import csrf_of

    resp = other.post("/dang-xuat", data={"csrf_token": csrf_of(account)})
    assert resp.status_code == 302
    back = _with_cookie(first, sid).get("/tai-khoan")
    assert back.status_code == 302 and "/dang-nhap" in back.headers["Location"]


def test_a_page_that_only_reads_the_session_does_not_write_it(database_url):
    app = _app(database_url)
    client = app.test_client()
    client.get("/_test/set?v=once")
    store: DatabaseSessions = app.session_interface
    writes = []
    real = store.store
    store.store = lambda sid, data: (writes.append(data), real(sid, data))[1]
    for _ in range(3):
        assert client.get("/_test/get").get_data(as_text=True) == "once"
    assert writes == []
    client.get("/_test/set?v=twice")
    assert [w["value"] for w in writes] == ["twice"]
    assert _with_cookie(_app(database_url), _sid(client)).get("/_test/get").get_data(as_text=True) == "twice"
