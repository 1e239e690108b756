"""Symmetric encryption for values we must read back (never for passwords or our own tokens' hashes)."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


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
