"""A rate-limited page says how long to wait, as the API does (issue 12, finding 10)."""

from __future__ import annotations


def test_sign_in_page_over_its_rate_limit_is_429_with_retry_after(client, settings):
    """RFC 6585 §4: a 429 MAY carry Retry-After; the API's do, and so does the sign-in page's."""
    assert settings.RATELIMIT_LOGIN == "10 per minute"
    form = {"email": "nobody@example.com", "password": "not the password"}
    for _ in range(10):
        assert client.post("/login", data=form).status_code != 429

    response = client.post("/login", data=form)

    assert response.status_code == 429 and response.mimetype == "text/html"
    assert 0 < int(response.headers["Retry-After"]) <= 60
