"""``make up`` signs deliveries with a key of its own: generated once into .run/secrets (mode
0600), kept across restarts, and never used when the operator configured one."""

from __future__ import annotations

import stat

from deploy.local import delivery_key_env
from services.router.delivery_keys import KEY_REF, load_private


def test_a_key_is_generated_once_and_kept(tmp_path, monkeypatch):
    monkeypatch.delenv("AGENCY_SECRET_DELIVERY_KEY", raising=False)
    monkeypatch.delenv("AGENCY_SECRETS_DIR", raising=False)
    directory = tmp_path / "secrets"
    env = delivery_key_env(directory)
    assert env == {"AGENCY_SECRETS_DIR": str(directory.resolve())}
    path = directory / KEY_REF
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    assert load_private(first).curve_name == "Ed25519"
    delivery_key_env(directory)
    assert path.read_text() == first, "a restart keeps the key (published deliveries still verify)"


def test_an_operators_key_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENCY_SECRETS_DIR", str(tmp_path))
    assert delivery_key_env(tmp_path / "secrets") == {}
    assert not (tmp_path / "secrets").exists()
