"""deploy/docs_assets.py: the AsyncAPI viewer is taken only from a tarball with the pinned
integrity, only the named files come out of it, and a second run does no network work."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from deploy import docs_assets


def _tarball(members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


GOOD = {member: f"content of {member}".encode() for member in docs_assets.FILES}


@pytest.fixture
def fake_package(monkeypatch):
    """A tarball shaped like the package's, with hostile extras; INTEGRITY pinned to it."""
    data = _tarball({**GOOD, "../escaped.js": b"x", "package/../../escaped2.js": b"x",
                     "/tmp/absolute.js": b"x", "package/package.json": b"{}"})
    monkeypatch.setattr(docs_assets, "INTEGRITY", docs_assets.integrity_of(data))
    return data


def test_the_pinned_integrity_is_npms_sha512_form():
    assert docs_assets.INTEGRITY.startswith("sha512-") and len(docs_assets.INTEGRITY) == 7 + 88
    assert docs_assets.integrity_of(b"") == (
        "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==")
    assert docs_assets.tarball_url("https://registry.npmjs.org/") == (
        f"https://registry.npmjs.org/@asyncapi/react-component/-/react-component-{docs_assets.VERSION}.tgz")


def test_a_tarball_with_another_integrity_is_refused_and_nothing_written(tmp_path, fake_package):
    tampered = _tarball({**GOOD, "package/browser/standalone/index.js": b"alert('owned')"})
    with pytest.raises(docs_assets.AssetError, match="integrity mismatch"):
        docs_assets.extract(tampered, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_only_the_named_files_come_out_under_their_new_names(tmp_path, fake_package):
    dest = tmp_path / "dest"
    hashes = docs_assets.extract(fake_package, dest)
    assert sorted(p.name for p in dest.iterdir()) == sorted(docs_assets.FILES.values())
    assert set(hashes) == set(docs_assets.FILES.values())
    for member, name in docs_assets.FILES.items():
        assert (dest / name).read_bytes() == GOOD[member]
    assert not list(tmp_path.rglob("escaped*")) and not Path("/tmp/absolute.js").exists()


def test_a_named_member_that_is_a_link_or_missing_is_refused(tmp_path, monkeypatch):
    first, *rest = docs_assets.FILES
    linked = _tarball({m: GOOD[m] for m in rest}, symlinks={first: "/etc/passwd"})
    monkeypatch.setattr(docs_assets, "INTEGRITY", docs_assets.integrity_of(linked))
    with pytest.raises(docs_assets.AssetError, match="not a regular file"):
        docs_assets.extract(linked, tmp_path / "a")
    missing = _tarball({m: GOOD[m] for m in rest})
    monkeypatch.setattr(docs_assets, "INTEGRITY", docs_assets.integrity_of(missing))
    with pytest.raises(docs_assets.AssetError, match="missing"):
        docs_assets.extract(missing, tmp_path / "b")


def test_install_once_then_check_only_and_reinstall_an_altered_file(tmp_path, fake_package, monkeypatch):
    fetched = []
    monkeypatch.setattr(docs_assets, "fetch_tarball", lambda npm, registry: fetched.append(1) or fake_package)
    dest = tmp_path / "dest"
    assert docs_assets.install(dest) is True and docs_assets.installed(dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["version"] == docs_assets.VERSION and manifest["integrity"] == docs_assets.INTEGRITY
    assert docs_assets.install(dest) is False and len(fetched) == 1  # no network the second time
    (dest / "asyncapi-standalone.js").write_bytes(b"altered")
    assert not docs_assets.installed(dest)
    assert docs_assets.install(dest) is True and len(fetched) == 2
    assert (dest / "asyncapi-standalone.js").read_bytes() == GOOD["package/browser/standalone/index.js"]


def test_without_npm_or_registry_it_says_how_to_install_and_fails_unless_told_to_warn(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(docs_assets.shutil, "which", lambda name: None)
    monkeypatch.setenv("NPM_REGISTRY", "http://127.0.0.1:9/")  # nothing listens on the discard port
    args = ["--dest", str(tmp_path / "dest")]
    assert docs_assets.main(args) == 1
    err = capsys.readouterr().err
    assert "npm is not installed" in err and "make docs-assets" in err and "could not download" in err
    assert docs_assets.main([*args, "--warn-only"]) == 0
    assert not (tmp_path / "dest" / "manifest.json").exists()


def test_only_https_downloads():
    with pytest.raises(docs_assets.AssetError, match="HTTPS"):
        docs_assets._download("http://registry.example/x.tgz")
