"""Signing in with GitHub (github.com or GitHub Enterprise Server): OAuth 2.0 without an ID token.

GitHub's documented web application flow ("Authorizing OAuth apps"): the browser goes to
{base_url}/login/oauth/authorize; the code is exchanged at {base_url}/login/oauth/access_token with
`Accept: application/json`, whose errors come back with HTTP 200 and an `error` field. The person is
`GET {api}/user`'s numeric `id` (a login can be renamed and reused; the id cannot), and the email is
only the primary address of `GET {api}/user/emails` marked `verified: true` — never `/user`'s `email`,
which the person types in and GitHub does not verify.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from app.errors import FederationFailed
from app.federation.http import FetchError, GuardedFetcher
from app.services.identities import VerifiedIdentity

DEFAULT_SCOPES = ("read:user", "user:email")


class GitHubAdapter:
    def __init__(self, *, base_url: str, api_url: str, client_id: str, client_secret: str | None,
                 scopes: list[str], redirect_uri: str, fetcher: GuardedFetcher) -> None:
        self.base_url = base_url
        self.api_url = api_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.scopes = scopes or list(DEFAULT_SCOPES)
        self.redirect_uri = redirect_uri
        self._fetcher = fetcher

    def uses_pkce(self) -> bool:
        # Nothing advertises it (GitHub has no discovery document): send no challenge.
        return False

    def authorization_url(self, *, state: str, nonce: str, code_verifier: str | None) -> str:
        params = {"client_id": self.client_id, "redirect_uri": self.redirect_uri, "scope": " ".join(self.scopes),
                  "state": state, "allow_signup": "false"}
        return f"{self.base_url}/login/oauth/authorize?{urlencode(params)}"

    def finish(self, params: Mapping[str, str], *, nonce: str, code_verifier: str | None,
               now: float) -> VerifiedIdentity:
        """Raises:
            FederationFailed: the person cancelled, the code exchange failed, or /user named nobody.
        """
        if params.get("error") == "access_denied":
            raise FederationFailed("access_denied", "The sign-in at the identity provider was cancelled or refused.")
        if params.get("error") is not None or not params.get("code"):
            raise FederationFailed("upstream_error", "The identity provider could not sign you in.")
        form = {"client_id": self.client_id, "client_secret": self.client_secret or "", "code": params["code"],
                "redirect_uri": self.redirect_uri}
        tokens = self._json("POST", f"{self.base_url}/login/oauth/access_token", body=urlencode(form).encode(),
                            headers={"Content-Type": "application/x-www-form-urlencoded"}, reason="token")
        # GitHub answers a refused exchange with HTTP 200 and {"error": ...}.
        if not isinstance(tokens, dict) or "error" in tokens or not isinstance(tokens.get("access_token"), str):
            raise FederationFailed("token_error", "The identity provider refused to complete the sign-in.")
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        user = self._json("GET", f"{self.api_url}/user", headers=bearer, reason="user")
        user_id = user.get("id") if isinstance(user, dict) else None
        if not isinstance(user_id, int) or isinstance(user_id, bool):
            raise FederationFailed("user_error", "The identity provider did not say who signed in.")
        emails = self._json("GET", f"{self.api_url}/user/emails", headers=bearer, reason="emails")
        primary = next((entry for entry in emails if isinstance(entry, dict) and entry.get("primary") is True
                        and entry.get("verified") is True and isinstance(entry.get("email"), str)), None) \
            if isinstance(emails, list) else None
        name = user.get("name") or user.get("login") or ""
        return VerifiedIdentity(subject=str(user_id), email=primary["email"] if primary else None,
                                email_verified=primary is not None, name=name if isinstance(name, str) else "")

    def _json(self, method: str, url: str, *, headers: dict[str, str], reason: str, body: bytes | None = None) -> Any:
        try:
            response = self._fetcher.fetch(url, method=method, body=body,
                                           headers={"Accept": "application/json", **headers})
            if response.status != 200:
                raise FetchError(f"HTTP {response.status}")
            return response.json()
        except FetchError:
            raise FederationFailed(f"{reason}_unavailable", "The identity provider did not answer.") from None
