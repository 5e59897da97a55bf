"""Bindings and remote IP ranges of receive connectors (exchange-semantics.md §1.1).

Role: parse and print the two address properties of a receive connector.

* A binding is ``IPv4:port`` or ``[IPv6]:port``; ``0.0.0.0`` / ``[::]`` mean every
  address of that family.
* A remote IP range is a single address (``fe80::1%11`` allowed: the zone is dropped),
  ``a-b`` (both ends of one family, a <= b) or CIDR ``net/len`` (host bits may be set,
  as Exchange accepts ``192.168.1.1/24``).

Invariant: IPv4-mapped IPv6 addresses (``::ffff:a.b.c.d``) are treated as IPv4
everywhere, so a dual-stack socket's view of an IPv4 client matches IPv4 ranges.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_RANGES = 1024          # RemoteIPRanges entries per connector
MAX_BINDINGS = 64          # Bindings entries per connector
MAX_ITEM_LENGTH = 100      # characters in one binding or range

_V4_ALL = (ipaddress.IPv4Address(0), ipaddress.IPv4Address(2**32 - 1))
_V6_ALL = (ipaddress.IPv6Address(0), ipaddress.IPv6Address(2**128 - 1))


def normalise_ip(text: str | IPAddress) -> IPAddress:
    """Parse an address, dropping an IPv6 zone and unmapping ``::ffff:a.b.c.d``.

    Raises ValueError for anything that is not an IP address."""
    if isinstance(text, str):
        raw = text.strip()
        if raw.startswith("[") and raw.endswith("]"):
            raw = raw[1:-1]
        if "%" in raw:
            raw = raw.split("%", 1)[0]
        ip = ipaddress.ip_address(raw)
    else:
        ip = text
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@dataclass(frozen=True, order=True)
class Binding:
    """A local endpoint a connector listens on."""

    ip: IPAddress
    port: int

    @property
    def is_wildcard(self) -> bool:
        return self.ip.is_unspecified

    def accepts(self, local_ip: IPAddress, local_port: int) -> bool:
        """True when a connection to ``local_ip:local_port`` arrives on this binding:
        same port and the same address, or the wildcard of the same family
        (§2 algorithm, step 1)."""
        if local_port != self.port or local_ip.version != self.ip.version:
            return False
        return self.is_wildcard or local_ip == self.ip

    def overlaps(self, other: Binding) -> bool:
        """True when the two bindings can receive the same connection."""
        if self.port != other.port or self.ip.version != other.ip.version:
            return False
        return self.is_wildcard or other.is_wildcard or self.ip == other.ip

    def __str__(self) -> str:
        if self.ip.version == 6:
            return f"[{self.ip}]:{self.port}"
        return f"{self.ip}:{self.port}"


def parse_binding(text: str) -> Binding:
    """Parse ``IPv4:port`` or ``[IPv6]:port``. ValueError with an operator message."""
    item = text.strip()
    if not item or len(item) > MAX_ITEM_LENGTH:
        raise ValueError(f"binding {text!r} is not IPv4:port or [IPv6]:port")
    if item.startswith("["):
        host, sep, port_text = item[1:].partition("]:")
        if not sep:
            raise ValueError(f"binding {text!r} is not [IPv6]:port")
    else:
        host, sep, port_text = item.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"binding {text!r} is not IPv4:port or [IPv6]:port")
    try:
        ip = normalise_ip(host)
    except ValueError:
        raise ValueError(f"{host!r} in binding {text!r} is not an IP address") from None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port {port_text!r} in binding {text!r} is not 1-65535")
    if item.startswith("[") and "." in host and ":" not in host:
        raise ValueError(f"binding {text!r}: write IPv4 bindings as a.b.c.d:port")
    return Binding(ip, int(port_text))


@dataclass(frozen=True)
class IPRange:
    """An inclusive range of remote addresses of one family; ``text`` is the form the
    operator wrote (normalised), for display."""

    first: IPAddress
    last: IPAddress
    text: str

    @property
    def version(self) -> int:
        return self.first.version

    @property
    def size(self) -> int:
        return int(self.last) - int(self.first) + 1

    def contains(self, ip: IPAddress) -> bool:
        ip = normalise_ip(ip)
        return ip.version == self.version and self.first <= ip <= self.last  # type: ignore[operator]

    def contains_range(self, other: IPRange) -> bool:
        return (other.version == self.version
                and int(self.first) <= int(other.first)
                and int(other.last) <= int(self.last))

    def overlaps(self, other: IPRange) -> bool:
        return (other.version == self.version
                and int(self.first) <= int(other.last)
                and int(other.first) <= int(self.last))

    def same_span(self, other: IPRange) -> bool:
        return self.first == other.first and self.last == other.last

    def __str__(self) -> str:
        return self.text


def parse_ip_range(text: str) -> IPRange:
    """Parse one RemoteIPRanges entry. ValueError with an operator message."""
    item = text.strip()
    if not item or len(item) > MAX_ITEM_LENGTH:
        raise ValueError(f"remote IP range {text!r} is empty or too long")
    try:
        if "/" in item:
            addr_text, _, len_text = item.partition("/")
            addr_text = addr_text.split("%", 1)[0]
            net = ipaddress.ip_network(f"{addr_text}/{len_text}", strict=False)
            if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96 \
                    and net.network_address.ipv4_mapped is not None:
                net = ipaddress.ip_network(
                    f"{net.network_address.ipv4_mapped}/{net.prefixlen - 96}", strict=False)
            return IPRange(net.network_address, net.broadcast_address,
                           f"{net.network_address}/{net.prefixlen}")
        if "-" in item:
            a_text, _, b_text = item.partition("-")
            a, b = normalise_ip(a_text), normalise_ip(b_text)
            if a.version != b.version:
                raise ValueError(f"remote IP range {text!r} mixes IPv4 and IPv6")
            if int(a) > int(b):
                raise ValueError(f"remote IP range {text!r} ends before it starts")
            return IPRange(a, b, f"{a}-{b}")
        ip = normalise_ip(item)
        return IPRange(ip, ip, str(ip))
    except ValueError as exc:
        if "remote IP range" in str(exc):
            raise
        raise ValueError(f"remote IP range {text!r} is not an address, a-b range or "
                         f"CIDR network") from None


def all_ipv4() -> IPRange:
    return IPRange(_V4_ALL[0], _V4_ALL[1], "0.0.0.0-255.255.255.255")


def all_ipv6() -> IPRange:
    return IPRange(_V6_ALL[0], _V6_ALL[1], "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")


def split_list(value: str | list[str] | tuple[str, ...]) -> list[str]:
    """A comma list (``a,b``) or an already split list, blanks dropped."""
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        out.extend(p.strip() for p in str(item).split(",") if p.strip())
    return out


def parse_bindings(value: str | list[str] | tuple[str, ...]) -> tuple[Binding, ...]:
    items = split_list(value)
    if len(items) > MAX_BINDINGS:
        raise ValueError(f"at most {MAX_BINDINGS} bindings per connector")
    return tuple(parse_binding(i) for i in items)


def parse_ip_ranges(value: str | list[str] | tuple[str, ...]) -> tuple[IPRange, ...]:
    items = split_list(value)
    if len(items) > MAX_RANGES:
        raise ValueError(f"at most {MAX_RANGES} remote IP ranges per connector")
    return tuple(parse_ip_range(i) for i in items)
