"""What every SMTP session of one service shares: the policy, the auth service, the
store, TLS, the protocol log and the connection counters.

Invariant: the counters are per process (a limit applies per worker process; several
workers each enforce it on their own share of connections, which errs on the
permissive side by at most the number of workers).
"""

from __future__ import annotations

import ssl
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from auth.service import AuthService
    from gateway.connectors import SmtpPolicy
    from gateway.relay.engine import Relay
    from gateway.store import Store
    from protocols.smtp.protocol_log import ProtocolLog
    from protocols.smtp.tracking_writer import TrackingWriter


@dataclass
class ConnectionCounter:
    """Open sessions per connector and per (connector, source address)."""

    per_connector: Counter[int] = field(default_factory=Counter)
    per_source: Counter[tuple[int, str]] = field(default_factory=Counter)

    def admit(self, connector_id: int, source: str, *, max_total: int | None,
              max_per_source: int | None) -> bool:
        """Count the connection in, or refuse it (False) when a limit is reached."""
        if max_total is not None and self.per_connector[connector_id] >= max_total:
            return False
        key = (connector_id, source)
        if max_per_source is not None and self.per_source[key] >= max_per_source:
            return False
        self.per_connector[connector_id] += 1
        self.per_source[key] += 1
        return True

    def release(self, connector_id: int, source: str) -> None:
        key = (connector_id, source)
        self.per_connector[connector_id] -= 1
        if self.per_connector[connector_id] <= 0:
            del self.per_connector[connector_id]
        self.per_source[key] -= 1
        if self.per_source[key] <= 0:
            del self.per_source[key]


@dataclass
class RateLimiter:
    """MessageRateLimit: messages per minute per (connector, sender identity), where
    the identity is the authenticated principal or else the client address (Exchange's
    MessageRateSource User / IPAddress). A sliding 60-second window per key; keys with
    no message in the window are forgotten, so memory follows the active clients."""

    window: float = 60.0
    _events: dict[tuple[int, str], deque[float]] = field(default_factory=dict)

    def allowed(self, connector_id: int, who: str, limit: int | None, now: float) -> bool:
        if limit is None:
            return True
        times = self._events.get((connector_id, who))
        if times is None:
            return True
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._events[(connector_id, who)]
            return True
        return len(times) < limit

    def record(self, connector_id: int, who: str, limit: int | None, now: float) -> None:
        if limit is None:
            return
        times = self._events.setdefault((connector_id, who), deque(maxlen=limit))
        times.append(now)
        if len(self._events) > MAX_RATE_KEYS:  # forget the idle ones
            for key in [k for k, v in self._events.items() if not v
                        or v[-1] <= now - self.window]:
                del self._events[key]


MAX_RATE_KEYS = 100_000


@dataclass
class SmtpContext:
    policy: SmtpPolicy
    store: Store
    auth: AuthService | None
    tls_context: ssl.SSLContext | None
    server_name: str
    protocol_log: ProtocolLog | None = None
    tracking: TrackingWriter | None = None
    # The relay engine's queue (issue 4), in the node and in SMTP worker processes;
    # None only in harnesses, which fall back to the relay_queue table a node adopts.
    relay: Relay | None = None
    # Client certificates (docs/client-certificates.md): the node's client-auth context,
    # used for STARTTLS on submission connectors only (never the port-25 role), and the
    # NTLM channel binding of our certificate (auth.ntlm.verify, RFC 5929 §4.1).
    tls_client_auth: ssl.SSLContext | None = None
    channel_binding: bytes | None = None
    counter: ConnectionCounter = field(default_factory=ConnectionCounter)
    rates: RateLimiter = field(default_factory=RateLimiter)
    shutting_down: bool = False
