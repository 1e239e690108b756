"""The one-way layering of DESIGN.md, checked on the source's imports.

services/ and models/ never import Flask or werkzeug (they get values, not the
request), and nothing imports the edge packages (api, web, oauth) except
create_app and the modules inside those packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import app as app_package

APP_DIR = Path(app_package.__file__).resolve().parent
EDGE_PACKAGES = ("app.api", "app.web", "app.oauth")
PURE_PACKAGES = ("app.services", "app.models")


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
])
def test_import_checker_detects_forbidden_imports(source, module, expected):
    names = imported_modules(source, module)
    forbidden = any(_is_framework(n) or any(_is_within(n, p) for p in EDGE_PACKAGES) for n in names)

    assert forbidden is expected


def test_services_and_models_do_not_import_web_framework_or_edge_layers():
    checked, violations = [], []
    for module, path in _modules().items():
        if not any(_is_within(module, p) for p in PURE_PACKAGES):
            continue
        checked.append(module)
        violations += [(module, name) for name in sorted(_imports_of(module, path))
                       if _is_framework(name) or any(_is_within(name, p) for p in EDGE_PACKAGES)]

    assert "app.services.users" in checked and "app.models.user" in checked
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
