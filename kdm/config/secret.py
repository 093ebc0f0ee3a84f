"""Password encryption for config files (`kdm encrypt`), and DM's decrypt-or-plaintext rule.

Ciphertext is base64 of a 12-byte nonce followed by AES-256-GCM output. The key is
`$KDM_SECRET_KEY` (64 hex digits) when set; otherwise a built-in key, which, as in DM,
only keeps passwords out of plain sight: set KDM_SECRET_KEY for real secrecy. A password
that does not decrypt is used as written (DM's rule), so plaintext passwords keep working.
DM's own ciphertexts use DM's key: re-encrypt them with `kdm encrypt`.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kdm.errors import ERR_CONFIG_DECRYPT

_BUILTIN_KEY = bytes.fromhex("6b646d2d636f6e6669672d70617373776f72642d6f62667573636174696f6e21")
_NONCE = 12


def secret_key() -> bytes:
    """The 32-byte key from KDM_SECRET_KEY, or the built-in one."""
    text = os.environ.get("KDM_SECRET_KEY", "")
    if not text:
        return _BUILTIN_KEY
    try:
        key = bytes.fromhex(text)
    except ValueError as exc:
        raise ERR_CONFIG_DECRYPT(exc, problem="KDM_SECRET_KEY must be 64 hex digits") from exc
    if len(key) != 32:
        raise ERR_CONFIG_DECRYPT(problem="KDM_SECRET_KEY must be 64 hex digits")
    return key


def encrypt(plaintext: str) -> str:
    """The ciphertext form of a password, for a config file."""
    nonce = os.urandom(_NONCE)
    sealed = AESGCM(secret_key()).encrypt(nonce, plaintext.encode(), None)
    return base64.b64encode(nonce + sealed).decode()


def decrypt(ciphertext: str) -> str:
    """The password inside `ciphertext`; a coded error when it is not ours."""
    try:
        raw = base64.b64decode(ciphertext, validate=True)
        return AESGCM(secret_key()).decrypt(raw[:_NONCE], raw[_NONCE:], None).decode()
    except (binascii.Error, InvalidTag, ValueError) as exc:
        raise ERR_CONFIG_DECRYPT(exc, problem="not a kdm ciphertext") from exc


def decrypt_or_plain(value: str) -> str:
    """DM's rule: a value that decrypts is a ciphertext; any other value is the password."""
    secret_key()
    if len(value) <= _NONCE + 16:
        return value
    try:
        return decrypt(value)
    except Exception:
        return value
