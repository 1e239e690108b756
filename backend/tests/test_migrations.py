"""The migrations build exactly the schema the models describe.

conftest's `database_url` ran `flask db upgrade` on an empty database (SQLite,
or PostgreSQL when DATABASE_URL is set); here that schema is compared with the
models the way `flask db migrate` would, so a model change without a migration
fails the suite.
"""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy import Column, MetaData, String, text

from app.extensions import db


def _target_metadata() -> MetaData:
    # As migrations/env.py:get_metadata.
    return db.metadatas[None] if hasattr(db, "metadatas") else db.metadata


def _compare_options(app: Flask) -> dict[str, Any]:
    # As migrations/env.py:run_migrations_online: Flask-Migrate's configure args
    # (render_as_batch from create_app) with compare_type defaulted to True.
    options = dict(app.extensions["migrate"].configure_args)
    options.setdefault("compare_type", True)
    return options


def _diff(app: Flask, metadata: MetaData) -> list:
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts=_compare_options(app))
        return compare_metadata(context, metadata)


def test_migrated_schema_matches_models(app):
    assert _compare_options(app)["compare_type"] is True

    assert _diff(app, _target_metadata()) == []


def test_compare_with_changed_model_reports_difference(app):
    """The comparison above is not vacuous: a model that drifted from the migrations is caught."""
    drifted = MetaData()
    for table in _target_metadata().sorted_tables:
        table.to_metadata(drifted)
    drifted.tables["users"].c.name.type = String(100)
    drifted.tables["users"].append_column(Column("nickname", String(50)))

    kinds = {entry[0] if isinstance(entry, tuple) else entry[0][0] for entry in _diff(app, drifted)}

    assert kinds == {"add_column", "modify_type"}


@pytest.fixture
def script_directory(app: Flask) -> ScriptDirectory:
    with app.app_context():
        return ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config())


def test_migration_scripts_have_single_head(script_directory):
    assert len(script_directory.get_heads()) == 1


def test_migrated_database_is_at_head(app, script_directory):
    with app.app_context(), db.engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()

    assert versions == [script_directory.get_current_head()]
