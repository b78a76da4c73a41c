"""Unit tests of where the router reads callback secrets: files beat variables, a changed file
is read again, a previous secret opens the overlap, nothing secret is logged."""

from __future__ import annotations

import logging
import os

import pytest

from services.router.secrets import SecretStore

REF = "AGENCY_SECRET_UNIT"


@pytest.fixture
def store(tmp_path, monkeypatch):
    for name in (REF, f"{REF}_PREVIOUS"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"ROUTER_{name}", raising=False)
    return SecretStore(tmp_path)


def _write(path, value: str, mode: int = 0o600) -> None:
    path.write_text(value)
    path.chmod(mode)


def test_file_wins_over_the_variable_and_the_variable_is_the_fallback(store, tmp_path, monkeypatch):
    monkeypatch.setenv(REF, "from-env")
    assert store.get(REF) == "from-env"
    assert store.status(REF).source == "env"
    _write(tmp_path / REF, "  from-file\n")
    assert store.get(REF) == "from-file"
    status = store.status(REF)
    assert status.source == "file" and 0 <= status.file_age_s < 60
    _write(tmp_path / REF, "\n")  # an emptied file is no secret: back to the variable
    assert store.get(REF) == "from-env"


def test_without_a_directory_only_variables_count(tmp_path, monkeypatch):
    monkeypatch.setenv(REF, "from-env")
    _write(tmp_path / REF, "from-file")
    assert SecretStore(None).get(REF) == "from-env"


def test_a_file_changed_in_place_or_swapped_is_read_again(store, tmp_path):
    path = tmp_path / REF
    _write(path, "first")
    assert store.get(REF) == "first"
    _write(path, "second")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert store.get(REF) == "second"
    swapped = tmp_path / "new"
    _write(swapped, "third")
    swapped.replace(path)  # how a mounted Kubernetes secret changes: a new file, not a rewrite
    assert store.get(REF) == "third"
    path.unlink()
    assert store.get(REF) is None


def test_an_unchanged_file_is_served_from_the_cache(store, tmp_path, monkeypatch):
    _write(tmp_path / REF, "cached")
    assert store.get(REF) == "cached"
    monkeypatch.setattr(type(tmp_path), "read_text", lambda *a, **k: pytest.fail("read again"))
    assert store.get(REF) == "cached"


def test_previous_secret_is_paired_only_while_set_and_different(store, tmp_path, monkeypatch):
    monkeypatch.setenv(REF, "new")
    assert store.pair(REF) == ("new", None)
    _write(tmp_path / f"{REF}_PREVIOUS", "old")
    assert store.pair(REF) == ("new", "old")
    _write(tmp_path / f"{REF}_PREVIOUS", "new")
    assert store.pair(REF) == ("new", None)
    assert store.pair(None) == (None, None)


@pytest.mark.parametrize("ref", ["AGENCY_SECRET_../../etc/passwd", "PATH", "agency_secret_x", ""])
def test_refs_outside_the_agency_secret_names_are_never_read(store, ref):
    assert store.get(ref) is None


def test_an_open_file_mode_is_warned_about_once_without_the_secret(store, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="services.router.secrets")
    _write(tmp_path / REF, "do-not-log-me", mode=0o640)
    store.get(REF)
    assert caplog.records == []  # group read is tolerated
    (tmp_path / REF).chmod(0o644)
    store.get(REF)
    store.get(REF)
    [record] = caplog.records
    assert "644" in record.getMessage() and "do-not-log-me" not in caplog.text
