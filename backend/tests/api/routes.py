"""The /api operations of the app, for tests that walk every route.

Parametrised tests need the list at collection time, before any fixture has
run, so it comes from an app built on an in-memory database that is never
connected to: only its URL map is read.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Callable

from flask import Flask
from werkzeug.routing import Rule

from app import create_app
from app.config import Settings

IGNORED_METHODS = {"HEAD", "OPTIONS"}  # answered by Flask itself, not by our views
_VARIABLE = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


@dataclass(frozen=True)
class Operation:
    rule: str
    method: str
    endpoint: str
    # Every method any rule for this path answers.
    allowed: frozenset[str]

    @property
    def openapi_path(self) -> str:
        return _VARIABLE.sub(r"{\2}", self.rule)

    @property
    def sample_url(self) -> str:
        """The rule with every variable filled in with a well-formed value."""
        def sample(match: re.Match[str]) -> str:
            return {"uuid": str(uuid.uuid4()), "int": "1"}.get(match.group(1) or "", "x")
        return _VARIABLE.sub(sample, self.rule)

    def view(self, app: Flask) -> Callable:
        return app.view_functions[self.endpoint]


def rule_variables(rule: str) -> list[str]:
    """The names of a rule's variables, in order: "/a/<uuid:org_id>/<name>" -> ["org_id", "name"]."""
    return [match.group(2) for match in _VARIABLE.finditer(rule)]


def plain_rule(rule: str) -> str:
    """The rule without converters: "/a/<uuid:org_id>" -> "/a/<org_id>"."""
    return _VARIABLE.sub(r"<\2>", rule)


def fill_rule(rule: str, values: dict[str, str]) -> str:
    """The rule with each variable replaced by values[name]."""
    return _VARIABLE.sub(lambda match: values[match.group(2)], rule)


def is_api_rule(rule: Rule) -> bool:
    return rule.rule == "/api" or rule.rule.startswith("/api/")


def api_operations(app: Flask) -> list[Operation]:
    """Every (rule, method) pair under /api that one of our views answers."""
    rules = [rule for rule in app.url_map.iter_rules() if is_api_rule(rule)]
    # One path may be served by several rules (GET, PATCH and DELETE /users/me).
    allowed: dict[str, set[str]] = {}
    for rule in rules:
        allowed.setdefault(rule.rule, set()).update(rule.methods)
    return [Operation(rule.rule, method, rule.endpoint, frozenset(allowed[rule.rule]))
            for rule in sorted(rules, key=lambda r: r.rule)
            for method in sorted(rule.methods - IGNORED_METHODS)]


@cache
def collection_app() -> Flask:
    return create_app(Settings(ENV="testing", SECRET_KEY="collection-only-" + "x" * 32, DATABASE_URL="sqlite://"))
