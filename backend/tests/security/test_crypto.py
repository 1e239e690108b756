"""FieldCipher: stored secrets encrypted under the first of ENCRYPTION_KEYS, decrypted with any."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from app.security.crypto import FieldCipher, UndecryptableSecret

OLD_KEY, NEW_KEY = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def test_encrypt_returns_ciphertext_that_is_not_the_plaintext_and_decrypts_back():
    cipher = FieldCipher.from_keys([OLD_KEY])

    ciphertext = cipher.encrypt("upstream-secret")

    assert "upstream-secret" not in ciphertext
    assert cipher.decrypt(ciphertext) == "upstream-secret"


def test_decrypt_with_a_later_key_reads_what_an_earlier_first_key_wrote():
    written = FieldCipher.from_keys([OLD_KEY]).encrypt("upstream-secret")

    assert FieldCipher.from_keys([NEW_KEY, OLD_KEY]).decrypt(written) == "upstream-secret"


def test_encrypt_uses_the_first_key():
    ciphertext = FieldCipher.from_keys([NEW_KEY, OLD_KEY]).encrypt("upstream-secret")

    assert FieldCipher.from_keys([NEW_KEY]).decrypt(ciphertext) == "upstream-secret"
    with pytest.raises(UndecryptableSecret):
        FieldCipher.from_keys([OLD_KEY]).decrypt(ciphertext)


def test_rotate_reencrypts_under_the_first_key():
    written = FieldCipher.from_keys([OLD_KEY]).encrypt("upstream-secret")

    rotated = FieldCipher.from_keys([NEW_KEY, OLD_KEY]).rotate(written)

    assert FieldCipher.from_keys([NEW_KEY]).decrypt(rotated) == "upstream-secret"


@pytest.mark.parametrize("operation", ["decrypt", "rotate"])
def test_ciphertext_of_a_dropped_key_raises_undecryptable(operation):
    written = FieldCipher.from_keys([OLD_KEY]).encrypt("upstream-secret")

    with pytest.raises(UndecryptableSecret):
        getattr(FieldCipher.from_keys([NEW_KEY]), operation)(written)


def test_changed_ciphertext_raises_undecryptable():
    cipher = FieldCipher.from_keys([OLD_KEY])
    ciphertext = cipher.encrypt("upstream-secret")
    tampered = ciphertext[:-8] + ("A" if ciphertext[-8] != "A" else "B") + ciphertext[-7:]

    with pytest.raises(UndecryptableSecret):
        cipher.decrypt(tampered)


def test_derived_cipher_depends_on_secret_key():
    ciphertext = FieldCipher.derived_from("a" * 48).encrypt("upstream-secret")

    assert FieldCipher.derived_from("a" * 48).decrypt(ciphertext) == "upstream-secret"
    with pytest.raises(UndecryptableSecret):
        FieldCipher.derived_from("b" * 48).decrypt(ciphertext)
