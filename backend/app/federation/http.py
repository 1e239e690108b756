"""Fetching URLs that an administrator supplied (issuers, discovery documents, JWKS, token and user
endpoints), guarded against server-side request forgery.

An administrator's URL must not become a way to reach what only this server can reach: the metadata
service at 169.254.169.254, the database, an admin port on localhost. So, unless private networks are
allowed (development and tests; FEDERATION_ALLOW_PRIVATE_NETWORKS): the host is resolved, every address
it resolves to must be public, and the connection goes to one of those checked addresses (a second DNS
answer cannot swap in another, as with DNS rebinding), with the host name kept for the Host header and
TLS verification. Production also requires https. Every fetch has timeouts and a size limit, and
follows a redirect only to the same scheme, host and port.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit

from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, Timeout
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError

DEFAULT_TIMEOUT = 5.0  # seconds to connect, and to wait for each read
DEFAULT_MAX_BYTES = 512 * 1024  # discovery documents and key sets are a few KiB
MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "Gatehouse (federation)"
_CHUNK = 64 * 1024


class FetchError(Exception):
    """The URL could not be fetched, or not safely. The message says why; it carries no secret."""


@dataclass(frozen=True)
class FetchedResponse:
    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            FetchError: the body is not JSON.
        """
        try:
            return json.loads(self.body)
        except ValueError:
            raise FetchError(f"{self.url} did not answer with JSON") from None


def is_public_address(address: str) -> bool:
    """Whether `address` is a globally routable unicast address (not private, loopback, link-local,
    shared, reserved or multicast), looking through IPv4-mapped and 6to4 IPv6 forms."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            ip = embedded
    return ip.is_global and not ip.is_multicast


def _origin(parts: SplitResult) -> tuple[str, str, int]:
    return parts.scheme, (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)


class GuardedFetcher:
    """Fetches upstream URLs with the guard described in the module docstring."""

    def __init__(self, *, allow_private_networks: bool, require_https: bool, timeout: float = DEFAULT_TIMEOUT,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.allow_private_networks = allow_private_networks
        self.require_https = require_https
        self.timeout = timeout
        self.max_bytes = max_bytes

    # --- checks without I/O -------------------------------------------------------------------------

    def url_problem(self, url: str) -> str | None:
        """Why `url` can never be fetched (scheme, form, or a literal address that is not allowed), or None.

        Host names are resolved only when fetched: what they resolve to can change.
        """
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
        except ValueError:
            return "Must be an absolute URL."
        schemes = ("https",) if self.require_https else ("https", "http")
        if parts.scheme not in schemes or not parts.hostname:
            return "Must be an absolute https URL." if self.require_https else "Must be an absolute http(s) URL."
        if parts.username is not None or parts.password is not None:
            return "Must not contain credentials."
        if parts.fragment:
            return "Must not contain a fragment."
        if not self.allow_private_networks and _is_ip_literal(parts.hostname) \
                and not is_public_address(parts.hostname):
            return "Must not point at a private, loopback or link-local address."
        return None

    # --- fetching -----------------------------------------------------------------------------------

    def fetch(self, url: str, *, method: str = "GET", headers: Mapping[str, str] | None = None,
              body: bytes | None = None) -> FetchedResponse:
        """Fetch `url` and return the response, whatever its status.

        GET follows up to MAX_REDIRECTS redirects within the same scheme, host and port; other methods
        return a redirect as it is.

        Raises:
            FetchError: the URL is not allowed, cannot be reached in time, redirects elsewhere, or the
                response is larger than max_bytes.
        """
        deadline = time.monotonic() + self.timeout * 3
        for _ in range(MAX_REDIRECTS + 1):
            response = self._fetch_once(url, method=method, headers=headers or {}, body=body, deadline=deadline)
            location = response.headers.get("Location")
            if method != "GET" or response.status not in REDIRECT_STATUSES or not location:
                return response
            target = urljoin(url, location)
            if _origin(urlsplit(target)) != _origin(urlsplit(url)):
                raise FetchError(f"{url} redirects to another host; only redirects within one host are followed")
            url = target
        raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects")

    def _fetch_once(self, url: str, *, method: str, headers: Mapping[str, str], body: bytes | None,
                    deadline: float) -> FetchedResponse:
        problem = self.url_problem(url)
        if problem is not None:
            raise FetchError(f"{url}: {problem}")
        parts = urlsplit(url)
        scheme, host, port = _origin(parts)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        default_port = port == (443 if scheme == "https" else 80)
        host_header = (f"[{host}]" if ":" in host else host) + ("" if default_port else f":{port}")
        request_headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **headers,
                           "Host": host_header, "Accept-Encoding": "identity"}
        last_error: Exception | None = None
        for address in self._addresses(host, port):
            pool = self._pool(scheme, address, port, host)
            try:
                response = pool.urlopen(method, path, body=body, headers=request_headers, redirect=False,
                                        retries=False, preload_content=False, decode_content=False,
                                        assert_same_host=False)
            except (NewConnectionError, ConnectTimeoutError) as err:
                last_error = err  # this address is down: try the next one the host resolved to
                pool.close()
                continue
            except HTTPError as err:
                pool.close()
                raise FetchError(f"{url}: {type(err).__name__}") from None
            try:
                return FetchedResponse(url=url, status=response.status, headers=dict(response.headers),
                                       body=self._read(url, response, deadline))
            finally:
                response.release_conn()
                pool.close()
        raise FetchError(f"{url}: cannot connect ({type(last_error).__name__})")

    def _addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to, each checked."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise FetchError(f"cannot resolve {host}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not self.allow_private_networks:
            refused = [address for address in addresses if not is_public_address(address)]
            if refused:
                # Every address, not only the first: a host may mix a public and a private answer.
                raise FetchError(f"{host} resolves to a private, loopback or link-local address")
        return addresses

    def _pool(self, scheme: str, address: str, port: int, host: str) -> HTTPConnectionPool:
        timeout = Timeout(connect=self.timeout, read=self.timeout)
        if scheme == "https":
            # Connect to the checked address; verify the certificate for the host name (SNI too).
            return HTTPSConnectionPool(address, port, timeout=timeout, maxsize=1, cert_reqs="CERT_REQUIRED",
                                       server_hostname=host, assert_hostname=host)
        return HTTPConnectionPool(address, port, timeout=timeout, maxsize=1)

    def _read(self, url: str, response: Any, deadline: float) -> bytes:
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            # Asked for identity; a compressed body could expand past the limit unseen.
            raise FetchError(f"{url} answered with Content-Encoding {encoding}")
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchError(f"{url}: the response is larger than {self.max_bytes} bytes")
        chunks, size = [], 0
        try:
            while chunk := response.read(_CHUNK):
                size += len(chunk)
                if size > self.max_bytes:
                    raise FetchError(f"{url}: the response is larger than {self.max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise FetchError(f"{url}: the response took too long")
                chunks.append(chunk)
        except HTTPError as err:
            raise FetchError(f"{url}: {type(err).__name__}") from None
        return b"".join(chunks)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True
