"""A real HTTP server on a free loopback port, standing in for an upstream identity provider."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Canned:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class UpstreamServer:
    """Answers each path with what `serve` set for it (404 otherwise) and records every request."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Canned] = {}
        self.received: list[Received] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                upstream.received.append(Received(self.command, self.path, dict(self.headers),
                                                  self.rfile.read(length) if length else b""))
                canned = upstream.routes.get(urlsplit(self.path).path, Canned(status=404))
                self.send_response(canned.status)
                headers = {"Content-Length": str(len(canned.body))} | canned.headers
                for name, value in headers.items():
                    if value is not None:
                        self.send_header(name, value)
                self.end_headers()
                self.wfile.write(canned.body)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        # A short poll interval: close() waits up to one for the serving thread to notice.
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def serve(self, path: str, body: Any = b"", *, status: int = 200, headers: dict[str, str] | None = None) -> None:
        """Answer `path` with `body` (a dict or list is sent as JSON)."""
        extra = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            extra.setdefault("Content-Type", "application/json")
        self.routes[path] = Canned(status=status, body=body, headers=extra)

    def serve_discovery(self, issuer: str | None = None, *, path: str = "/.well-known/openid-configuration",
                        **overrides: Any) -> dict[str, Any]:
        """A discovery document (OIDC Discovery 1.0 §3) for `issuer` (default: this server)."""
        issuer = self.url if issuer is None else issuer
        document = {"issuer": issuer, "authorization_endpoint": f"{self.url}/authorize",
                    "token_endpoint": f"{self.url}/token", "jwks_uri": f"{self.url}/jwks",
                    "response_types_supported": ["code"], "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"]} | overrides
        self.serve(path, document)
        return document

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
