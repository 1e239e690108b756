"""The client's IP address as the app should see it.

ProxyFix (configured with TRUSTED_PROXY_COUNT in create_app) has already
replaced remote_addr with the right X-Forwarded-For entry when proxies are
trusted; with no trusted proxies a client-set header is ignored.
"""

from flask import request


def client_ip() -> str:
    return request.remote_addr or "unknown"
