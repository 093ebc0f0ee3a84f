"""Password encryption: round trips, DM's plaintext fallback, the key from the environment."""

from __future__ import annotations

import pytest

from kdm.config.secret import decrypt, decrypt_or_plain, encrypt
from kdm.errors import KdmError


def test_round_trip_and_randomised_nonce() -> None:
    first, second = encrypt("s3cret"), encrypt("s3cret")
    assert first != second
    assert decrypt(first) == decrypt(second) == "s3cret"


def test_plaintext_passwords_pass_through() -> None:
    for plain in ("", "123456", "a-rather-long-plaintext-password-that-is-not-base64!"):
        assert decrypt_or_plain(plain) == plain
    assert decrypt_or_plain(encrypt("pw")) == "pw"


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    sealed = encrypt("pw")
    monkeypatch.setenv("KDM_SECRET_KEY", "11" * 32)
    with pytest.raises(KdmError) as caught:
        decrypt(sealed)
    assert caught.value.code == 20010
    assert decrypt(encrypt("pw")) == "pw"
    monkeypatch.setenv("KDM_SECRET_KEY", "short")
    with pytest.raises(KdmError):
        encrypt("pw")
