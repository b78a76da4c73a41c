"""Where the payment service reads its merchant secret: a file in ``PAYMENT_SECRETS_DIR`` wins
over the variable and is read again when rotated in place (no restart), the previous secret
still verifies the platform's notifications during the overlap but never signs, and a file
readable by others is warned about without its value."""

from __future__ import annotations

import logging
import os
from urllib.parse import parse_qsl, urlsplit

import pytest

from services.payment import platform, settings
from services.payment.domain import signing

NAMES = ("PAYMENT_MERCHANT_SECRET", "PAYMENT_MERCHANT_SECRET_PREVIOUS")


@pytest.fixture
def secrets_dir(tmp_path, monkeypatch):
    for name in (*NAMES, "PAYMENT_SECRETS_DIR", "LOCAL_ADAPTERS"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"PAYMENT_{name}", raising=False)
    monkeypatch.setenv("PAYMENT_SECRETS_DIR", str(tmp_path))
    return tmp_path


def _write(directory, name: str, value: str, mode: int = 0o600) -> None:
    """Replace the file as a mounted secret changes: a new file renamed over the old."""
    staged = directory / f".{name}.new"
    staged.write_text(value + "\n")
    staged.chmod(mode)
    os.replace(staged, directory / name)


def _signed_with(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def _notification(secret: str) -> dict[str, str]:
    return signing.signed({"vnp_TxnRef": "P1", "vnp_Amount": "20000000", "vnp_ResponseCode": "00"}, secret)


def test_the_file_wins_over_the_variable_and_a_rotation_in_place_signs_at_once(secrets_dir, monkeypatch):
    monkeypatch.setenv("PAYMENT_MERCHANT_SECRET", "from-env")
    assert settings.merchant_secrets() == ("from-env",)
    _write(secrets_dir, "PAYMENT_MERCHANT_SECRET", "file-one")
    assert settings.merchant_secrets() == ("file-one",)
    _write(secrets_dir, "PAYMENT_MERCHANT_SECRET", "file-two")  # the same process, no restart
    fields = _signed_with(platform.payment_url("P1", 200_000, platform.dt.datetime.now(platform.LOCAL_TZ), "le phi"))
    assert signing.verify(fields, ["file-two"]) and not signing.verify(fields, ["file-one"])
    os.remove(secrets_dir / "PAYMENT_MERCHANT_SECRET")  # back to the variable
    assert settings.merchant_secrets() == ("from-env",)


def test_the_previous_secret_verifies_during_the_overlap_and_never_signs(secrets_dir):
    _write(secrets_dir, "PAYMENT_MERCHANT_SECRET", "new-secret")
    _write(secrets_dir, "PAYMENT_MERCHANT_SECRET_PREVIOUS", "old-secret")
    assert settings.merchant_secrets() == ("new-secret", "old-secret")
    assert platform.current_secret() == "new-secret"
    for secret in ("new-secret", "old-secret"):  # the platform may not have switched yet, or has
        assert signing.verify(_notification(secret), settings.merchant_secrets())
    assert not signing.verify(_notification("other-secret"), settings.merchant_secrets())
    os.remove(secrets_dir / "PAYMENT_MERCHANT_SECRET_PREVIOUS")  # the overlap ends
    assert not signing.verify(_notification("old-secret"), settings.merchant_secrets())


def test_without_a_current_secret_nothing_signs_and_the_local_secret_only_with_local_adapters(
        secrets_dir, monkeypatch):
    _write(secrets_dir, "PAYMENT_MERCHANT_SECRET_PREVIOUS", "old-secret")
    assert settings.merchant_secrets() == ()  # a previous secret alone is no configuration
    with pytest.raises(platform.Unavailable):
        platform.current_secret()
    monkeypatch.setenv("LOCAL_ADAPTERS", "yes")
    assert settings.merchant_secrets() == (settings.LOCAL_SECRET, "old-secret")


def test_only_the_merchant_secret_names_are_read(secrets_dir, monkeypatch):
    monkeypatch.setenv("PATH_SECRET", "x")
    store = settings.secret_store()
    for name in ("PATH", "../PAYMENT_MERCHANT_SECRET", "PAYMENT_MERCHANT_SECRET\n", "AGENCY_SECRET_X"):
        assert store.get(name) is None


def test_a_file_others_can_read_is_warned_about_without_its_value(secrets_dir, caplog):
    caplog.set_level(logging.WARNING)
    _write(secrets_dir, "PAYMENT_MERCHANT_SECRET", "do-not-log-me", mode=0o644)
    assert settings.merchant_secrets() == ("do-not-log-me",)
    settings.merchant_secrets()
    [record] = [r for r in caplog.records if "secret file" in r.getMessage()]
    message = record.getMessage()
    assert "PAYMENT_MERCHANT_SECRET" in message and "644" in message and message.startswith("payment:")
    assert "do-not-log-me" not in caplog.text
