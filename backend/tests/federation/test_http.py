"""GuardedFetcher against a real HTTP server on loopback: timeouts, the size limit, redirects, and the
SSRF guard (production: https only, no private, loopback or link-local address)."""

from __future__ import annotations

import socket

import pytest

from app.federation.http import FetchError, GuardedFetcher, is_public_address
from tests.upstream import UpstreamServer


def development_fetcher(**kwargs) -> GuardedFetcher:
    return GuardedFetcher(allow_private_networks=True, require_https=False, **kwargs)


def production_fetcher(**kwargs) -> GuardedFetcher:
    return GuardedFetcher(allow_private_networks=False, require_https=True, **kwargs)


@pytest.fixture
def other_host():
    """A second server, reached under another host name (localhost rather than 127.0.0.1)."""
    server = UpstreamServer()
    yield server, f"http://localhost:{server.port}"
    server.close()


def test_fetch_returns_status_headers_and_body(upstream):
    upstream.serve("/doc", {"hello": "world"})

    response = development_fetcher().fetch(f"{upstream.url}/doc?x=1")

    assert (response.status, response.json()) == (200, {"hello": "world"})
    assert response.headers["Content-Type"] == "application/json"
    assert upstream.received[0].path == "/doc?x=1"
    assert upstream.received[0].headers["Host"] == f"127.0.0.1:{upstream.port}"


def test_fetch_posts_body_and_headers(upstream):
    upstream.serve("/token", {"ok": True})

    development_fetcher().fetch(f"{upstream.url}/token", method="POST", body=b"a=1",
                                headers={"Content-Type": "application/x-www-form-urlencoded"})

    assert (upstream.received[0].method, upstream.received[0].body) == ("POST", b"a=1")


def test_fetch_refuses_response_larger_than_limit_by_content_length(upstream):
    upstream.serve("/big", b"x" * 2049)

    with pytest.raises(FetchError, match="larger than 2048 bytes"):
        development_fetcher(max_bytes=2048).fetch(f"{upstream.url}/big")


def test_fetch_refuses_response_larger_than_limit_without_content_length(upstream):
    """A body of unannounced length (HTTP/1.0, read to the end) is counted as it arrives."""
    upstream.serve("/big", b"x" * 100_000, headers={"Content-Length": None})

    with pytest.raises(FetchError, match="larger than 2048 bytes"):
        development_fetcher(max_bytes=2048).fetch(f"{upstream.url}/big")


def test_fetch_accepts_response_of_exactly_the_limit(upstream):
    upstream.serve("/doc", b"x" * 2048)

    assert len(development_fetcher(max_bytes=2048).fetch(f"{upstream.url}/doc").body) == 2048


def test_fetch_refuses_compressed_response(upstream):
    upstream.serve("/doc", b"\x1f\x8b", headers={"Content-Encoding": "gzip"})

    with pytest.raises(FetchError, match="Content-Encoding gzip"):
        development_fetcher().fetch(f"{upstream.url}/doc")


def test_fetch_follows_redirect_within_the_same_host(upstream):
    upstream.serve("/old", status=302, headers={"Location": "/new"})
    upstream.serve("/new", {"moved": True})

    assert development_fetcher().fetch(f"{upstream.url}/old").json() == {"moved": True}


def test_fetch_refuses_redirect_to_another_host(upstream, other_host):
    server, other_url = other_host
    server.serve("/doc", {"elsewhere": True})
    upstream.serve("/old", status=302, headers={"Location": f"{other_url}/doc"})

    with pytest.raises(FetchError, match="redirects to another host"):
        development_fetcher().fetch(f"{upstream.url}/old")
    assert server.received == []


def test_fetch_refuses_endless_redirects(upstream):
    upstream.serve("/loop", status=302, headers={"Location": "/loop"})

    with pytest.raises(FetchError, match="redirects"):
        development_fetcher().fetch(f"{upstream.url}/loop")


def test_fetch_returns_redirect_of_a_post_unfollowed(upstream):
    upstream.serve("/token", status=307, headers={"Location": "/elsewhere"})

    assert development_fetcher().fetch(f"{upstream.url}/token", method="POST", body=b"").status == 307
    assert len(upstream.received) == 1


def test_fetch_times_out_on_a_server_that_never_answers():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (backlog), never answers
        with pytest.raises(FetchError):
            development_fetcher(timeout=0.2).fetch(f"http://127.0.0.1:{silent.getsockname()[1]}/doc")


def test_fetch_of_a_closed_port_raises_fetch_error():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

    with pytest.raises(FetchError, match="cannot connect"):
        development_fetcher().fetch(f"http://127.0.0.1:{port}/doc")


# --- the SSRF guard --------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"], ids=["loopback-address", "name-resolving-to-loopback"])
def test_fetch_without_private_networks_refuses_loopback_before_connecting(upstream, host):
    upstream.serve("/doc", {"secret": "internal"})
    fetcher = GuardedFetcher(allow_private_networks=False, require_https=False)

    with pytest.raises(FetchError, match="private, loopback or link-local"):
        fetcher.fetch(f"http://{host}:{upstream.port}/doc")
    assert upstream.received == []


def test_production_fetcher_refuses_loopback_over_https(upstream):
    with pytest.raises(FetchError, match="private, loopback or link-local"):
        production_fetcher().fetch(f"https://localhost:{upstream.port}/doc")
    assert upstream.received == []


def test_production_fetcher_refuses_http(upstream):
    with pytest.raises(FetchError, match="https"):
        production_fetcher().fetch("http://example.com/doc")


def test_redirect_is_checked_again(upstream):
    """A redirect cannot smuggle in what the guard refuses: each hop's URL is checked."""
    upstream.serve("/old", status=302, headers={"Location": "http://127.0.0.1:1/admin"})
    fetcher = GuardedFetcher(allow_private_networks=True, require_https=False)

    with pytest.raises(FetchError, match="another host"):
        fetcher.fetch(f"{upstream.url}/old")


@pytest.mark.parametrize(("url", "problem"), [
    ("https://169.254.169.254/latest/meta-data", "private, loopback or link-local"),
    ("https://[::1]/x", "private, loopback or link-local"),
    ("https://10.0.0.8/x", "private, loopback or link-local"),
    ("https://user:pw@idp.example.com/x", "credentials"),
    ("https://idp.example.com/x#frag", "fragment"),
    ("ftp://idp.example.com/x", "https"),
    ("http://idp.example.com/x", "https"),
    ("/relative", "https"),
    ("https://idp.example.com:notaport/x", "absolute"),
])
def test_production_url_problem_names_the_problem(url, problem):
    assert problem in production_fetcher().url_problem(url)


def test_production_url_problem_accepts_public_https_url():
    assert production_fetcher().url_problem("https://accounts.google.com") is None


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "224.0.0.1", "255.255.255.255", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "2002:7f00:1::", "::",
])
def test_is_public_address_refuses_non_public_address(address):
    assert is_public_address(address) is False


@pytest.mark.parametrize("address", ["8.8.8.8", "140.82.112.3", "2001:4860:4860::8888"])
def test_is_public_address_accepts_global_unicast(address):
    assert is_public_address(address) is True
