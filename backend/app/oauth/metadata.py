"""Server metadata: OIDC Discovery 1.0 §3 and RFC 8414 §2. It advertises exactly what is implemented.

Organizations: an authorization request may carry `organization=<id or slug>` (see
endpoints.authorize); tokens issued in an organization carry org_id, org_slug, org_name
and org_roles, and UserInfo returns them under the `organization` scope.
"""

from __future__ import annotations

from typing import Any

from app.config import Settings
from app.oauth.grants import CLIENT_AUTH_METHODS, CONFIDENTIAL_AUTH_METHODS, RESPONSE_MODES
from app.services.authorization_context import ORGANIZATION_CLAIMS, ORGANIZATION_SCOPE
from app.services.client_rules import ASSERTION_ALGS, ID_TOKEN_ALGS

SCOPES = ["openid", "profile", "email", "offline_access", ORGANIZATION_SCOPE]
# amr: "pwd" for a password; "fed" (then the upstream's own values) through an identity provider, whose
# id is idp.
CLAIMS = ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "amr", "idp",
          "name", "updated_at", "email", "email_verified", *ORGANIZATION_CLAIMS]


def authorization_server_metadata(settings: Settings) -> dict[str, Any]:
    issuer = settings.ISSUER.rstrip("/")
    return {
        "issuer": settings.ISSUER,
        "authorization_endpoint": f"{issuer}/oauth2/authorize",
        "token_endpoint": f"{issuer}/oauth2/token",
        "jwks_uri": f"{issuer}/oauth2/jwks",
        "introspection_endpoint": f"{issuer}/oauth2/introspect",
        "revocation_endpoint": f"{issuer}/oauth2/revoke",
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": list(RESPONSE_MODES),
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        # The methods the endpoints accept (oauth/grants.py, oauth/server.py), from the same lists.
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "introspection_endpoint_auth_methods_supported": CONFIDENTIAL_AUTH_METHODS,
        "introspection_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "code_challenge_methods_supported": ["S256"],
        # RFC 9207: every authorization response carries iss.
        "authorization_response_iss_parameter_supported": True,
    }


def openid_configuration(settings: Settings) -> dict[str, Any]:
    issuer = settings.ISSUER.rstrip("/")
    return authorization_server_metadata(settings) | {
        "userinfo_endpoint": f"{issuer}/oauth2/userinfo",
        "end_session_endpoint": f"{issuer}/oauth2/logout",
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(ID_TOKEN_ALGS),
        "claims_supported": CLAIMS,
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        # Discovery §3 defaults this to true; we do not support request_uri.
        "request_uri_parameter_supported": False,
    }
