"""Symmetric encryption for values we must read back (never for passwords or our own tokens' hashes).

Two uses: `fernet_for` derives a key from SECRET_KEY for short-lived values of our own (a refresh
token's successor during its grace window); `FieldCipher` encrypts secrets stored for good, such as
upstream client secrets, under the operator's ENCRYPTION_KEYS, which rotate without SECRET_KEY.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# HKDF info of the key derived from SECRET_KEY when ENCRYPTION_KEYS is not set (development only).
DERIVED_FIELD_KEY_PURPOSE = "gatehouse stored-secret encryption"


def fernet_for(secret_key: str, purpose: str) -> Fernet:
    """A Fernet key derived from SECRET_KEY, distinct per purpose (HKDF info)."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(fernet: Fernet, plaintext: str) -> str:
    return fernet.encrypt(plaintext.encode()).decode()


def decrypt(fernet: Fernet, ciphertext: str) -> str | None:
    """The plaintext, or None if the ciphertext was not made with this key."""
    try:
        return fernet.decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        return None


def is_fernet_key(key: str) -> bool:
    """Whether `key` is a Fernet key: 32 bytes, url-safe base64."""
    try:
        Fernet(key)
    except (ValueError, binascii.Error):
        return False
    return True


class UndecryptableSecret(ValueError):
    """A stored ciphertext that none of the configured keys decrypts (a key was dropped too early)."""


class FieldCipher:
    """Encrypts stored secrets under the first key and decrypts them with any (Fernet: AES-128-CBC with
    HMAC-SHA256, so a changed ciphertext is refused rather than decrypted to garbage)."""

    def __init__(self, fernets: Sequence[Fernet]) -> None:
        if not fernets:
            raise ValueError("a FieldCipher needs at least one key")
        self._fernet = MultiFernet(list(fernets))

    @classmethod
    def from_keys(cls, keys: Sequence[str]) -> FieldCipher:
        """The cipher of ENCRYPTION_KEYS (Settings.encryption_keys), first key first."""
        return cls([Fernet(key) for key in keys])

    @classmethod
    def derived_from(cls, secret_key: str) -> FieldCipher:
        """A cipher whose one key comes from SECRET_KEY: for development, where ENCRYPTION_KEYS may be unset."""
        return cls([fernet_for(secret_key, DERIVED_FIELD_KEY_PURPOSE)])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        """The plaintext.

        Raises:
            UndecryptableSecret: no configured key made this ciphertext, or it was changed.
        """
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise UndecryptableSecret("no key in ENCRYPTION_KEYS decrypts this value") from None

    def rotate(self, ciphertext: str) -> str:
        """The same plaintext, encrypted again under the first key.

        Raises:
            UndecryptableSecret: as decrypt.
        """
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken:
            raise UndecryptableSecret("no key in ENCRYPTION_KEYS decrypts this value") from None
