"""factory_boy factories, one per model.

They commit (not just flush): requests run on their own connections and must
see the rows (see conftest.py on why tests truncate instead of rolling back).
"""

from __future__ import annotations

import factory
from sqlalchemy.orm import Session

from app.models import User
from app.security.passwords import hash_password

DEFAULT_PASSWORD = "correct horse battery staple"
# Hashed once: bcrypt at cost 4 is cheap, but not free across hundreds of users.
_DEFAULT_HASH = hash_password(DEFAULT_PASSWORD, 4)


class BaseFactory(factory.alchemy.SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_persistence = "commit"


def bind(session: Session) -> None:
    """Point every factory at the test's session."""
    for factory_cls in (UserFactory,):
        factory_cls._meta.sqlalchemy_session = session


class UserFactory(BaseFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Sequence(lambda n: f"User {n}")
    password_hash = _DEFAULT_HASH
    email_verified = True
