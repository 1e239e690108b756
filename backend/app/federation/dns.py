"""TXT records over DNS (dnspython), for proving domains (services.domains). DNS_RESOLVER=host:port names
the resolver to ask; unset, the system's (/etc/resolv.conf)."""

from __future__ import annotations

import dns.exception
import dns.resolver

from app.services.domains import LookupFailed


class TxtResolver:
    """services.domains.TxtLookup over DNS: each TXT record as one string, its character-strings joined
    (RFC 7208 §3.3 reads them the same way)."""

    def __init__(self, nameserver: str | None, *, timeout: float) -> None:
        self._resolver = dns.resolver.Resolver(configure=nameserver is None)
        if nameserver is not None:
            host, _, port = nameserver.rpartition(":")
            self._resolver.nameservers = [host.strip("[]")]
            self._resolver.port = int(port)
        self._resolver.lifetime = timeout
        # The organization publishes the record while it waits: a cached "no record" would hide it.
        self._resolver.cache = None

    def txt_records(self, name: str) -> list[str]:
        """Every TXT record at `name`; [] when the name or the record does not exist.

        Raises:
            LookupFailed: the resolver failed or did not answer in time.
        """
        try:
            answer = self._resolver.resolve(name, "TXT", raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return []
        except dns.exception.DNSException as error:
            raise LookupFailed(type(error).__name__) from None
        return [b"".join(record.strings).decode("utf-8", "replace") for record in answer]
