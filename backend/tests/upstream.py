"""A real HTTP server on a free loopback port, standing in for an upstream identity provider."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey


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


class OpenIDProviderStandIn:
    """An OpenID provider's documented answers (OIDC Discovery §3, Core §3.1.3.3, §5.3) on an UpstreamServer:
    its discovery document, key set, token and UserInfo responses, with ID tokens signed by its own RSA key.

    The test decides each answer: `issue(nonce=..., **claims)` sets the next token response.
    """

    CLIENT_ID = "gatehouse-at-corp"
    CLIENT_SECRET = "corp-client-secret"

    def __init__(self, **discovery: Any) -> None:
        self.server = UpstreamServer()
        self.url = self.issuer = self.server.url
        self.key = RSAKey.generate_key(2048, parameters={"kid": "corp-1", "alg": "RS256", "use": "sig"})
        self.discovery = self.server.serve_discovery(**{
            "userinfo_endpoint": f"{self.url}/userinfo", "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True, **discovery})
        self.server.serve("/jwks", {"keys": [self.key.as_dict(private=False)]})

    def id_token(self, claims: dict[str, Any], *, header: dict[str, Any] | None = None, key: Any = None) -> str:
        return jwt.encode({"alg": "RS256", "kid": "corp-1", **(header or {})}, claims, key or self.key)

    def claims(self, *, nonce: str, subject: str = "corp-user-1", email: str | None = "pat@corp.example",
               email_verified: bool = True, **more: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": subject, "aud": self.CLIENT_ID, "iat": now, "exp": now + 300,
                  "nonce": nonce, "email": email, "email_verified": email_verified, "name": "Pat Corp"} | more
        return {name: value for name, value in claims.items() if value is not None}

    def issue(self, *, nonce: str, userinfo_subject: str | None = None, token: str | None = None,
              **claims: Any) -> None:
        """The next token response: an ID token with `claims` (or `token` as it is), and its UserInfo."""
        body = self.claims(nonce=nonce, **claims)
        self.server.serve("/token", {"access_token": "corp-access-token", "token_type": "Bearer", "expires_in": 300,
                                     "id_token": token or self.id_token(body)})
        self.server.serve("/userinfo", {"sub": userinfo_subject or body["sub"], "email": body.get("email"),
                                        "email_verified": body.get("email_verified")})

    def requests_to(self, path: str) -> list[Received]:
        return [received for received in self.server.received if urlsplit(received.path).path == path]

    def close(self) -> None:
        self.server.close()
