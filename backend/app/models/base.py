"""Declarative base, UUID primary keys and UTC timestamps shared by every model."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import DateTime, MetaData, TypeDecorator, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints so migrations can drop and alter them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# Column.info of a column that holds a secret encrypted with security.crypto.FieldCipher: every
# such column is re-encrypted by services.stored_secrets.rotate_stored_secrets.
ENCRYPTED = {"encrypted": True}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    SQLite drops the offset, so values are stored as naive UTC and handed back
    aware; comparing an aware and a naive datetime would raise.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def as_uuid(value: object) -> uuid.UUID | None:
    """`value` (a UUID or its string form) as a UUID, or None when it is not one (ids from requests)."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


class UUIDPrimaryKey:
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)


def encrypted_columns() -> list[tuple[type[Base], str]]:
    """Every (model, attribute) whose column is marked ENCRYPTED, ordered by table and attribute."""
    found = []
    for mapper in Base.registry.mappers:
        for attribute in mapper.column_attrs:
            if any(column.info.get("encrypted") for column in attribute.columns):
                found.append((mapper.class_, attribute.key))
    return sorted(found, key=lambda item: (item[0].__tablename__, item[1]))
