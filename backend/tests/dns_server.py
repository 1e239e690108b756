"""A real DNS server on loopback (dnslib's server, UDP and TCP on one free port) answering TXT queries from
a dict the test fills: what an organization publishes to prove its domain."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from dnslib import QTYPE, RCODE, RR, TXT, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

HOST = "127.0.0.1"


@dataclass
class Zone(BaseResolver):
    """TXT records by name (without the trailing dot); every other name is NXDOMAIN, and with `failing`
    every query is SERVFAIL."""

    port: int = 0
    txt: dict[str, list[str]] = field(default_factory=dict)
    failing: bool = False
    queries: list[str] = field(default_factory=list)

    @property
    def resolver_setting(self) -> str:
        """The DNS_RESOLVER value that points at this server."""
        return f"{HOST}:{self.port}"

    def resolve(self, request: DNSRecord, handler) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        self.queries.append(name)
        if self.failing:
            reply.header.rcode = RCODE.SERVFAIL
        elif name not in self.txt:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.TXT:
            for value in self.txt[name]:
                # One character-string holds at most 255 bytes (RFC 1035 §3.3.14): a longer value is several.
                strings = [value[start:start + 255] for start in range(0, len(value), 255)]
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(strings), ttl=60))
        return reply


def _free_port() -> int:
    """A port free for UDP and TCP alike (dnspython retries over TCP when an answer is truncated)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@pytest.fixture
def dns_zone() -> Iterator[Zone]:
    zone = Zone(port=_free_port())
    quiet = DNSLogger(log="-recv,-send,-request,-reply,-truncated,-error,-data", prefix=False)
    servers = [DNSServer(zone, address=HOST, port=zone.port, tcp=tcp, logger=quiet) for tcp in (False, True)]
    for server in servers:
        server.start_thread()
    yield zone
    for server in servers:
        server.stop()
        server.server.server_close()
