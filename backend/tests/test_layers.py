"""The one-way layering of DESIGN.md, checked on the source's imports and calls.

services/, models/ and stores/ never import Flask or werkzeug (they get values, not the
request); services/ and models/ never import redis, app.extensions or app.request_context either
(infrastructure reaches them as arguments), nor does stores/ reach for the app. Nothing imports
the edge packages (api, web, oauth, cli) except create_app and the modules inside those packages.
The views (api, web, cli) run no queries: no SQLAlchemy statement, no query through the session;
they call a service.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import app as app_package

APP_DIR = Path(app_package.__file__).resolve().parent
EDGE_PACKAGES = ("app.api", "app.web", "app.oauth", "app.cli")
PURE_PACKAGES = ("app.services", "app.models", "app.stores")
VIEW_PACKAGES = ("app.api", "app.web", "app.cli")
# What the app keeps for its requests: the edge hands services what they need from it.
APP_STATE_MODULES = ("app.extensions", "app.request_context")
# Session methods that query; on `db.session` (or `db`) in a view they are a query in the wrong layer.
QUERY_METHODS = frozenset({"execute", "get", "get_one", "query", "scalar", "scalar_one", "scalars"})


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(APP_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(APP_DIR.rglob("*.py"))}


def imported_modules(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module `source` imports, absolute, including `from pkg import submodule` as pkg.submodule."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[:len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _is_within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _is_framework(name: str) -> bool:
    top = name.split(".")[0]
    return top in {"flask", "werkzeug"} or top.startswith("flask_")


def _imports_of(module: str, path: Path) -> set[str]:
    return imported_modules(path.read_text(), module, is_package=path.name == "__init__.py")


def _is_forbidden_in(module: str, name: str) -> bool:
    """Whether `module` (in services/, models/ or stores/) may not import `name`."""
    if _is_framework(name) or any(_is_within(name, p) for p in EDGE_PACKAGES):
        return True
    if any(_is_within(name, m) for m in APP_STATE_MODULES):
        return True
    return name.split(".")[0] == "redis" and not _is_within(module, "app.stores")


def queries_in(source: str) -> list[str]:
    """The SQLAlchemy queries `source` makes or builds: imports from sqlalchemy other than its
    exceptions, and query methods called on `db.session` or `db`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and not node.level and _is_within(node.module or "", "sqlalchemy"):
            if not _is_within(node.module, "sqlalchemy.exc"):
                found.append(f"from {node.module} import {', '.join(a.name for a in node.names)}")
        elif isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names
                      if _is_within(a.name, "sqlalchemy") and not _is_within(a.name, "sqlalchemy.exc")]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in QUERY_METHODS and ast.unparse(node.func.value) in {"db.session", "db"}):
            found.append(ast.unparse(node))
    return found


@pytest.mark.parametrize(("source", "module", "expected"), [
    ("import flask", "app.services.x", True),
    ("from flask import g", "app.services.x", True),
    ("import flask_limiter", "app.services.x", True),
    ("from werkzeug.exceptions import NotFound", "app.models.x", True),
    ("from app.api import envelope", "app.services.x", True),
    ("from app import web", "app.services.x", True),
    ("import app.oauth.server", "app.models.x", True),
    ("from ..api.envelope import ok", "app.services.x", True),
    ("from .. import oauth", "app.services.x", True),
    ("from app.services import audit", "app.services.x", False),
    ("from sqlalchemy import select", "app.models.x", False),
    ("from app.apikeys import x", "app.services.x", False),
    ("import redis", "app.services.x", True),
    ("from redis.exceptions import RedisError", "app.services.x", True),
    ("from redis import Redis", "app.models.x", True),
    ("from redis import Redis", "app.stores.x", False),
    ("from app.extensions import token_denylist", "app.services.x", True),
    ("from app import extensions", "app.services.x", True),
    ("from app.request_context import request_actor", "app.services.x", True),
    ("from app.extensions import db", "app.stores.x", True),
    ("from app.cli import clients", "app.services.x", True),
    ("from flask import current_app", "app.stores.x", True),
    ("from app.stores.denylist import TokenDenylist", "app.services.x", False),
])
def test_import_checker_detects_forbidden_imports(source, module, expected):
    assert any(_is_forbidden_in(module, name) for name in imported_modules(source, module)) is expected


def test_services_models_and_stores_do_not_import_web_framework_app_state_or_edge_layers():
    checked, violations = [], []
    for module, path in _modules().items():
        if not any(_is_within(module, p) for p in PURE_PACKAGES):
            continue
        checked.append(module)
        violations += [(module, name) for name in sorted(_imports_of(module, path)) if _is_forbidden_in(module, name)]

    assert {"app.services.users", "app.models.user", "app.stores.denylist"} <= set(checked)
    assert violations == []


@pytest.mark.parametrize(("source", "expected"), [
    ("from sqlalchemy import select", True),
    ("import sqlalchemy", True),
    ("from sqlalchemy.orm import joinedload", True),
    ("from sqlalchemy.exc import IntegrityError", False),
    ("db.session.get(User, user_id)", True),
    ("db.session.scalars(statement)", True),
    ("db.session.execute(statement)", True),
    ("db.session.query(User).first()", True),
    ("db.get(User, user_id)", True),
    ("db.session.commit()", False),
    ("session.get('pending')", False),  # Flask's cookie session
    ("clients.get_client(db.session, client_id)", False),
])
def test_query_checker_detects_queries(source, expected):
    assert bool(queries_in(source)) is expected


def test_views_run_no_queries():
    """api/, web/ and cli/ parse, call a service and answer: every query lives in services/."""
    checked, violations = [], []
    for module, path in _modules().items():
        if any(_is_within(module, p) for p in VIEW_PACKAGES):
            checked.append(module)
            violations += [(module, query) for query in queries_in(path.read_text())]

    assert {"app.api.clients", "app.web.pages", "app.cli.clients"} <= set(checked)
    assert violations == []


def test_edge_packages_are_imported_only_by_create_app_and_themselves():
    violations = []
    for module, path in _modules().items():
        if module == "app":
            continue
        for name in sorted(_imports_of(module, path)):
            for package in EDGE_PACKAGES:
                if _is_within(name, package) and not _is_within(module, package):
                    violations.append((module, name))

    assert violations == []


def test_schemas_do_not_import_services():
    """Schemas check shape and format only: a value a service decides (a status, a rule) reaches them as data."""
    violations = [(module, name) for module, path in _modules().items() if _is_within(module, "app.schemas")
                  for name in sorted(_imports_of(module, path)) if _is_within(name, "app.services")]

    assert violations == []
