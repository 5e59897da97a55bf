"""Receive connector selection for one connection (exchange-semantics.md §2).

Role: given the local endpoint the client reached and the client's address, choose the
connector, and say why, for enforcement and for ``Test-SmtpRelay``.

Algorithm (§2, steps 1-5):
1. candidates: enabled connectors with a binding on the destination port whose address
   is the destination address or the wildcard of its family (IPv4-mapped IPv6 counts
   as IPv4);
2. keep those with a remote range containing the client address;
3. the smallest such range wins;
4. on a tie, a specific-address binding beats a wildcard; a remaining tie (only
   possible with invalid data) goes to the lowest id, deterministically;
5. no match: ``421 4.3.2 Service not available``, close, log.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.connectors.model import ReceiveConnector
from gateway.connectors.ranges import IPAddress, IPRange, normalise_ip


@dataclass(frozen=True)
class Selection:
    """The chosen connector (or None) and the reasoning, one line per connector."""

    connector: ReceiveConnector | None
    matched_range: IPRange | None
    reason: str
    candidates: tuple[str, ...]


def select_connector(connectors: tuple[ReceiveConnector, ...] | list[ReceiveConnector],
                     local_ip: str | IPAddress, local_port: int,
                     remote_ip: str | IPAddress) -> Selection:
    """Pick the connector for a connection from ``remote_ip`` to ``local_ip:local_port``."""
    local = normalise_ip(local_ip)
    remote = normalise_ip(remote_ip)
    lines: list[str] = []
    best: tuple[int, int, int] | None = None     # (range size, wildcard?, id)
    chosen: ReceiveConnector | None = None
    chosen_range: IPRange | None = None
    for c in connectors:
        binding = next((b for b in c.bindings if b.accepts(local, local_port)
                        and not b.is_wildcard), None) \
            or next((b for b in c.bindings if b.accepts(local, local_port)), None)
        if binding is None:
            continue
        if not c.enabled:
            lines.append(f"{c.name!r}: binding {binding} matches but the connector is "
                         "disabled")
            continue
        ranges = [r for r in c.remote_ip_ranges if r.contains(remote)]
        if not ranges:
            lines.append(f"{c.name!r}: binding {binding} matches but no remote IP range "
                         f"contains {remote}")
            continue
        smallest = min(ranges, key=lambda r: r.size)
        lines.append(f"{c.name!r}: binding {binding} and remote range {smallest} "
                     f"({smallest.size} address{'es' if smallest.size != 1 else ''}) match")
        key = (smallest.size, 1 if binding.is_wildcard else 0, c.id)
        if best is None or key < best:
            best, chosen, chosen_range = key, c, smallest
    if chosen is None:
        if not lines:
            lines.append(f"no enabled connector has a binding for {local}:{local_port}")
        return Selection(None, None, f"no receive connector accepts {remote} on "
                         f"{local}:{local_port}", tuple(lines))
    assert chosen_range is not None
    reason = (f"connector {chosen.name!r} chosen: its remote range {chosen_range} is the "
              f"most specific one containing {remote} on {local}:{local_port}")
    return Selection(chosen, chosen_range, reason, tuple(lines))
