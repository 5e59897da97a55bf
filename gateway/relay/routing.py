"""Routing: which send connector serves a domain, and which hosts to connect to.

* Connector selection (Exchange, "Send connectors"): among enabled connectors whose
  address space matches the recipient domain, the most specific address space wins
  (an exact domain over ``*.domain`` over a shorter ``*.parent`` over ``*``); among
  equally specific ones the lowest cost. ``*.example.test`` matches example.test and
  every subdomain.
* Smart hosts are used in the order given (``host``, ``host:port``, ``[192.0.2.1]``);
  otherwise DNS routing: MX records in preference order (RFC 5321 §5.1), the
  domain's A/AAAA records when it has no MX ("implicit MX"), a permanent failure for
  a domain that does not exist (``5.4.4 SMTPSEND.DNS.NonExistentDomain``) or
  publishes a null MX (RFC 7505 §3: ``556 5.1.10``).

The resolver is injected (``Resolver``): production uses dnspython's async resolver,
tests a static table - tests never resolve real names.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.errors import ValidationError
from gateway.store.send_connectors import AddressSpace, SendConnector

MAX_HOSTS = 16  # destination addresses tried per attempt
MAX_MX = 10


class RoutingError(Exception):
    """No destination: ``permanent`` decides NDR (True) or retry (False)."""

    def __init__(self, reply: str, *, permanent: bool) -> None:
        super().__init__(reply)
        self.reply = reply
        self.permanent = permanent


class Resolver(Protocol):
    async def mx(self, domain: str) -> list[tuple[int, str]] | None:
        """MX records as (preference, exchange); None when the domain has no MX;
        RoutingError(permanent=True) when it does not exist; RoutingError(permanent=
        False) on a temporary DNS failure."""

    async def addresses(self, host: str) -> list[str]:
        """A and AAAA addresses of ``host`` (IPv4 first); empty when none."""


@dataclass(frozen=True)
class Destination:
    host: str  # the name we connect to (for TLS SNI and logs)
    address: str  # IP address
    port: int


def parse_address_space(text: str) -> AddressSpace:
    """``[SMTP:]domain[;cost]`` as New-SendConnector -AddressSpaces takes it."""
    value = text.strip()
    if value.upper().startswith("SMTP:"):
        value = value[5:]
    domain, _, cost_text = value.partition(";")
    domain = domain.strip().lower()
    domain = domain[:-1] if domain.endswith(".") and len(domain) > 2 else domain
    cost = 1
    if cost_text:
        if not cost_text.strip().isdigit() or not 1 <= int(cost_text) <= 100:
            raise ValidationError(f"address space cost must be 1 to 100: {text!r}")
        cost = int(cost_text)
    body = domain[2:] if domain.startswith("*.") else domain
    if domain != "*" and (not body or len(body) > 253 or ".." in body or not all(
            label and len(label) <= 63 and all(c.isalnum() or c in "-_" for c in label)
            for label in body.split("."))):
        raise ValidationError(f"not an SMTP address space: {text!r}")
    return AddressSpace(domain, cost)


def parse_smart_host(text: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[ip]`` or ``[ip]:port``."""
    value = text.strip()
    port = default_port
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep:
            raise ValidationError(f"bad smart host {text!r}")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise ValidationError(f"bad smart host {text!r}")
            port = int(rest[1:])
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValidationError(f"bad smart host address {text!r}") from None
    else:
        host, sep, port_text = value.rpartition(":") if value.count(":") == 1 else (
            value, "", "")
        if sep:
            if not port_text.isdigit():
                raise ValidationError(f"bad smart host port {text!r}")
            port = int(port_text)
        if not host or len(host) > 253 or not all(c.isalnum() or c in ".-_" for c in host):
            raise ValidationError(f"bad smart host {text!r}")
    if not 1 <= port <= 65535:
        raise ValidationError(f"smart host port must be 1 to 65535: {text!r}")
    return host.lower(), port


def _specificity(space: str, domain: str) -> int | None:
    if space == "*":
        return 0
    if space.startswith("*."):
        parent = space[2:]
        if domain == parent or domain.endswith("." + parent):
            return 1 + 2 * len(parent)
        return None
    return 2 + 2 * len(space) if space == domain else None


def select_connector(domain: str, connectors: Sequence[SendConnector]
                     ) -> SendConnector | None:
    """The enabled connector whose most specific address space matches, lowest cost
    breaking ties (then name, so the choice is stable)."""
    best: tuple[int, int, str] | None = None
    chosen: SendConnector | None = None
    for c in connectors:
        if not c.enabled:
            continue
        for space in c.address_spaces:
            spec = _specificity(space.domain, domain)
            if spec is None:
                continue
            key = (-spec, space.cost, c.name.lower())
            if best is None or key < best:
                best, chosen = key, c
    return chosen


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _host_addresses(resolver: Resolver, host: str) -> list[str]:
    return [host] if _is_ip(host) else await resolver.addresses(host)


async def destinations(domain: str, connector: SendConnector,
                       resolver: Resolver) -> list[Destination]:
    """Addresses to try for ``domain`` through ``connector``, best first."""
    out: list[Destination] = []
    if connector.smart_hosts:
        for text in connector.smart_hosts:
            host, port = parse_smart_host(text, connector.port)
            out += [Destination(host, a, port) for a in await _host_addresses(resolver, host)]
        if not out:
            raise RoutingError("451 4.4.0 DNS query failed: no address for any smart host",
                               permanent=False)
        return out[:MAX_HOSTS]
    records = await resolver.mx(domain)
    if records is None:
        hosts = [domain]  # RFC 5321 §5.1: no MX, the domain itself is the implicit MX
    else:
        ordered = sorted(records, key=lambda r: (r[0], r[1]))[:MAX_MX]
        if len(ordered) == 1 and ordered[0][1].rstrip(".") == "":
            # RFC 7505 §3: a null MX says the domain accepts no mail.
            raise RoutingError("556 5.1.10 SMTPSEND.DNS.NullMxRecord; domain accepts no mail",
                               permanent=True)
        hosts = [h.rstrip(".").lower() for _, h in ordered if h.rstrip(".")]
    for host in hosts:
        out += [Destination(host, a, connector.port)
                for a in await _host_addresses(resolver, host)]
        if len(out) >= MAX_HOSTS:
            break
    if not out:
        raise RoutingError(f"451 4.4.0 DNS query failed: no address for {domain}",
                           permanent=False)
    return out[:MAX_HOSTS]


class DnsResolver:
    """``Resolver`` on dnspython's asyncio resolver (``dns.asyncresolver``)."""

    def __init__(self, *, lifetime: float = 10.0) -> None:
        import dns.asyncresolver

        self._resolver = dns.asyncresolver.Resolver()
        self._resolver.lifetime = lifetime

    async def mx(self, domain: str) -> list[tuple[int, str]] | None:
        import dns.exception
        import dns.resolver

        try:
            answer = await self._resolver.resolve(domain, "MX")
        except dns.resolver.NXDOMAIN:
            raise RoutingError(f"550 5.4.4 SMTPSEND.DNS.NonExistentDomain; nonexistent "
                               f"domain {domain}", permanent=True) from None
        except dns.resolver.NoAnswer:
            return None
        except (dns.exception.Timeout, dns.resolver.NoNameservers):
            raise RoutingError(f"451 4.4.0 DNS query failed for {domain}",
                               permanent=False) from None
        return [(int(r.preference), r.exchange.to_text(omit_final_dot=True))
                for r in answer]

    async def addresses(self, host: str) -> list[str]:
        import dns.exception
        import dns.resolver

        out: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self._resolver.resolve(host, rdtype)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except (dns.exception.Timeout, dns.resolver.NoNameservers):
                raise RoutingError(f"451 4.4.0 DNS query failed for {host}",
                                   permanent=False) from None
            out += [r.to_text() for r in answer]
        return out


class StaticResolver:
    """A ``Resolver`` from tables, for tests and for air-gapped deployments."""

    def __init__(self, mx: dict[str, list[tuple[int, str]]] | None = None,
                 hosts: dict[str, list[str]] | None = None,
                 missing: Sequence[str] = ()) -> None:
        self._mx = {k.lower(): v for k, v in (mx or {}).items()}
        self._hosts = {k.lower(): v for k, v in (hosts or {}).items()}
        self._missing = {m.lower() for m in missing}

    async def mx(self, domain: str) -> list[tuple[int, str]] | None:
        if domain.lower() in self._missing:
            raise RoutingError(f"550 5.4.4 SMTPSEND.DNS.NonExistentDomain; nonexistent "
                               f"domain {domain}", permanent=True)
        return self._mx.get(domain.lower())

    async def addresses(self, host: str) -> list[str]:
        return list(self._hosts.get(host.lower(), []))
