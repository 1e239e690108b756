"""Password hashing (bcrypt) and the password policy.

bcrypt only reads the first 72 bytes of its input, and bcrypt 5 raises on
longer input. We reject passwords over 72 UTF-8 bytes rather than pre-hash
them: pre-hashing makes every stored hash depend on an extra, easily
mis-implemented step (a raw digest can contain NUL bytes), while 72 bytes is
ample for any password a person types or a manager generates.
"""

from __future__ import annotations

from functools import lru_cache

import bcrypt

from app.security.word_lists import word_list

MIN_LENGTH = 8
MAX_BYTES = 72


def common_passwords() -> frozenset[str]:
    return word_list("common_passwords.txt")


def password_problems(password: str) -> list[str]:
    """Why `password` is not acceptable; an empty list when it is."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"Must be at least {MIN_LENGTH} characters.")
    if len(password.encode()) > MAX_BYTES:
        problems.append(f"Must be at most {MAX_BYTES} bytes (bcrypt's limit).")
    if password.lower() in common_passwords():
        problems.append("Is too common; choose a less guessable password.")
    return problems


def hash_password(password: str, rounds: int) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def verify_password(password: str, password_hash: str) -> bool:
    """Constant-time check; False for input bcrypt cannot take."""
    data = password.encode()
    if len(data) > MAX_BYTES:
        return False
    return bcrypt.checkpw(data, password_hash.encode())


@lru_cache(maxsize=8)
def dummy_hash(rounds: int) -> str:
    """A hash to check against when the account does not exist, so an unknown
    email costs the same bcrypt work as a known one."""
    return hash_password("not-a-real-password-" + "x" * 16, rounds)
