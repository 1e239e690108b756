"""Secrets stored encrypted (security.crypto.FieldCipher): re-encrypting every one under the first key."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import errors
from app.models.base import encrypted_columns
from app.security.crypto import FieldCipher, UndecryptableSecret
from app.services import audit
from app.services.actor import Actor


def rotate_stored_secrets(db: Session, *, actor: Actor, cipher: FieldCipher) -> dict[str, int]:
    """Re-encrypt every stored secret (each column marked ENCRYPTED) under the cipher's first key, and
    return how many values each table had. After the caller commits, the other keys can be dropped.

    Raises:
        Conflict: a value that no key decrypts (naming its table and row, never the value); nothing
            is changed, as the caller does not commit.
    """
    rotated: dict[str, int] = {}
    for model, attribute in encrypted_columns():
        column = getattr(model, attribute)
        for row in db.scalars(select(model).where(column.is_not(None)).order_by(model.id)):
            try:
                setattr(row, attribute, cipher.rotate(getattr(row, attribute)))
            except UndecryptableSecret:
                raise errors.Conflict(f"{model.__tablename__} {row.id}: no key in ENCRYPTION_KEYS decrypts its "
                                      f"{attribute}; add the key it was encrypted with, then rotate again.") from None
            rotated[model.__tablename__] = rotated.get(model.__tablename__, 0) + 1
    audit.record_event(db, actor=actor, action="secrets.rotated", details={"rotated": rotated})
    return rotated
