"""GatehouseApp (app/__init__.py): Flask's coroutine check is looked up for what the app registered,
and asked as Flask asks for anything else, without keeping it."""

from __future__ import annotations

from dataclasses import dataclass

from flask import after_this_request


def test_callbacks_made_per_request_are_not_kept(app, client):
    @app.get("/_per_request")
    def per_request():
        @after_this_request
        def stamp(response):  # a new function on every request
            response.headers["X-Stamped"] = "yes"
            return response
        return "ok"

    kept = len(app._sync_callables)
    answers = [client.get("/_per_request") for _ in range(20)]

    assert [a.headers.get("X-Stamped") for a in answers] == ["yes"] * 20
    assert len(app._sync_callables) == kept


def test_an_unhashable_hook_registered_later_still_runs(app, client):
    @dataclass  # eq without hash: instances are unhashable
    class Counter:
        calls: int = 0

        def __call__(self) -> None:
            self.calls += 1

    counter = Counter()
    app.before_request(counter)

    assert client.get("/api/health").status_code in (200, 503)
    assert counter.calls == 1


def test_what_the_app_registered_is_looked_up(app):
    jwks = app.view_functions["oauth.jwks"]
    assert app.ensure_sync(jwks) is jwks and jwks in app._sync_callables
