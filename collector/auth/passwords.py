"""Password hashing with argon2id (argon2-cffi's defaults), and a dummy check so unknown accounts take as long."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()
MIN_LENGTH = 10


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


@functools.cache
def _dummy() -> str:
    """Made on first use, not at import: a hash costs ~0.15 s and 64 MiB, which every start-up would pay."""
    return _HASHER.hash("strana-dummy-password")


def verify(stored: str | None, password: str) -> bool:
    """True when `password` matches; with no stored hash, burn the same time and say no."""
    try:
        return _HASHER.verify(stored or _dummy(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def check_new(password) -> str | None:
    """What is wrong with a new password, or None."""
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if len(password) > 1024:
        return "must be at most 1024 characters"
    return None
