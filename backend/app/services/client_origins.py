"""The web origins of the registered clients: where their browser code runs, which CORS allows
(oauth/cors.py, through the client cache's copy of `all_cors_origins`)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import OAuthClient


def _origin(uri: str) -> str | None:
    """scheme://host[:port] as a browser sends it in Origin (RFC 6454 §6.2), for http(s) URIs."""
    parts = urlsplit(uri)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default_port = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None and port != default_port else "")


def _origins(redirect_uris: Iterable[str]) -> set[str]:
    return {origin for uri in redirect_uris if (origin := _origin(uri)) is not None}


def client_origins(client: OAuthClient) -> set[str]:
    """The web origins of the client's http(s) redirect URIs: where its browser code runs (for CORS)."""
    return _origins(client.redirect_uris)


def all_cors_origins(db: Session) -> set[str]:
    """The union of every client's web origins."""
    origins: set[str] = set()
    for redirect_uris in db.scalars(select(OAuthClient.redirect_uris)):
        origins |= _origins(redirect_uris)
    return origins
