"""security/cookie_session.py: Flask's signed-cookie session, built once per set of keys, opened only when a
request brings a cookie and saved only when a view used it."""

from __future__ import annotations

import pytest
from flask import session
from flask.sessions import SecureCookieSessionInterface

from app.security.cookie_session import CookieSessionInterface


@pytest.fixture
def routes(app):
    @app.get("/_session/set")
    def set_value():
        session["colour"] = "teal"
        return "set"

    @app.get("/_session/get")
    def get_value():
        return session.get("colour", "none")

    @app.get("/_session/untouched")
    def untouched():
        return "ok"

    return app


def cookie_of(response) -> str:
    [header] = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("session=")]
    return header.split(";", 1)[0].split("=", 1)[1]


def test_a_cookie_signed_before_the_key_rotated_is_read_through_the_fallback(routes, client):
    signed_before = cookie_of(client.get("/_session/set"))
    old_key = routes.secret_key
    routes.secret_key = routes.config["SECRET_KEY"] = "a-new-secret-key-" + "x" * 40
    routes.config["SECRET_KEY_FALLBACKS"] = [old_key]

    client.set_cookie("session", signed_before)
    assert client.get("/_session/get").get_data(as_text=True) == "teal"
    # What is signed now is signed with the new key: without the fallback it still reads.
    signed_after = cookie_of(client.get("/_session/set"))
    routes.config["SECRET_KEY_FALLBACKS"] = []
    client.set_cookie("session", signed_after)
    assert client.get("/_session/get").get_data(as_text=True) == "teal"
    client.set_cookie("session", signed_before)
    assert client.get("/_session/get").get_data(as_text=True) == "none"


def test_a_session_the_view_never_touched_is_not_set_again(routes, client):
    """As Flask's own interface answers (this pins that ours kept it): no cookie and no Vary: Cookie."""
    client.set_cookie("session", cookie_of(client.get("/_session/set")))

    response = client.get("/_session/untouched")

    assert response.status_code == 200
    assert not [h for h in response.headers.getlist("Set-Cookie") if h.startswith("session=")]
    assert "Cookie" not in response.headers.get("Vary", "")


def test_nothing_is_signed_for_a_request_without_a_cookie_and_one_serializer_serves_the_rest(routes, client,
                                                                                           monkeypatch):
    """What the interface adds to Flask's: a request that brings no cookie and touches no session builds
    no signing serializer (Flask's builds one for every request), and one serializer serves every
    request until the keys change."""
    built = []
    build = SecureCookieSessionInterface.get_signing_serializer
    monkeypatch.setattr(SecureCookieSessionInterface, "get_signing_serializer",
                        lambda interface, app: built.append(app) or build(interface, app))
    routes.session_interface = CookieSessionInterface()

    for _ in range(3):
        client.get("/_session/untouched")
    assert built == []
    for _ in range(3):
        client.get("/_session/set")
    assert len(built) == 1
