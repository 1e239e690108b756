"""Response headers that every page needs and no view should have to remember."""

from __future__ import annotations

from flask import Flask, Response


def init_page_caching(app: Flask) -> None:
    """No HTML page of ours may be stored by a browser or proxy cache.

    Pages are per user and often carry secrets in their URL or form (an invitation token
    in the sign-in page's `next`, an ID Token in the logout confirmation's action, the
    authorization request in consent and the organization picker).
    """
    @app.after_request
    def no_store_for_pages(response: Response) -> Response:
        if response.mimetype == "text/html":
            response.headers["Cache-Control"] = "no-store"
        return response
