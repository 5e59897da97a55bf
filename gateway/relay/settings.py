"""Transport settings: retry, expiry and DSN timing (organisation settings section
``"transport"``).

Defaults are Exchange's (reference exchange-semantics.md §7, "Message retry, resubmit,
and expiration intervals"): MessageExpirationTimeout 2 days, DelayNotificationTimeout
4 hours, TransientFailureRetryCount 6 at TransientFailureRetryInterval 5 minutes, then
MessageRetryInterval 15 minutes; OutboundConnectionFailureRetryInterval 10 minutes.
Every value is configurable with ``store.org.set_settings("transport", {...})`` and is
bounded so that a typo cannot stall the queue.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from gateway.errors import ValidationError

SECTION = "transport"

# name -> (minimum, maximum); Exchange's ranges where it documents them.
_BOUNDS: dict[str, tuple[float, float]] = {
    "message_expiration_timeout": (5.0, 90 * 86400.0),
    "delay_notification_timeout": (1.0, 90 * 86400.0),
    "transient_failure_retry_count": (0, 15),
    "transient_failure_retry_interval": (0.1, 12 * 3600.0),
    "message_retry_interval": (0.1, 24 * 3600.0),
    "outbound_connection_failure_retry_interval": (0.1, 24 * 3600.0),
    "max_hop_count": (1, 500),
    "lease_seconds": (1.0, 3600.0),
    "poll_interval": (0.05, 60.0),
    "connect_timeout": (0.1, 600.0),
    "command_timeout": (0.1, 3600.0),
    "data_timeout": (0.1, 3600.0),
    "max_concurrent_deliveries": (1, 1000),
}


@dataclass(frozen=True)
class TransportSettings:
    """All times in seconds."""

    message_expiration_timeout: float = 2 * 86400.0
    delay_notification_timeout: float = 4 * 3600.0
    transient_failure_retry_count: int = 6
    transient_failure_retry_interval: float = 300.0
    message_retry_interval: float = 900.0
    outbound_connection_failure_retry_interval: float = 600.0
    # RFC 5321 §6.3: loops are detected by counting Received fields; Postfix's
    # hopcount_limit is 50, Exchange stops loops at 5.4.6 (reference §7).
    max_hop_count: int = 50
    lease_seconds: float = 300.0  # a claim's lifetime; a crashed worker's work waits this
    poll_interval: float = 0.5  # how often a worker looks for work other processes queued
    # RFC 5321 §4.5.3.2: client timeouts (initial 5 min, MAIL/RCPT 5 min, DATA end 10 min).
    connect_timeout: float = 60.0
    command_timeout: float = 300.0
    data_timeout: float = 600.0
    max_concurrent_deliveries: int = 100

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> TransportSettings:
        """Validate stored settings; unknown keys and out-of-range values are an error."""
        known = {f.name: f for f in fields(cls)}
        unknown = set(values) - set(known)
        if unknown:
            raise ValidationError(f"unknown transport settings: {', '.join(sorted(unknown))}")
        out: dict[str, Any] = {}
        for name, value in values.items():
            lo, hi = _BOUNDS[name]
            integer = isinstance(getattr(cls, name), int)
            if isinstance(value, bool) or not isinstance(value, int | float) or (
                    integer and not isinstance(value, int)):
                raise ValidationError(f"transport setting {name} must be a number")
            if not lo <= value <= hi:
                raise ValidationError(f"transport setting {name} must be {lo} to {hi}")
            out[name] = value
        return cls(**out)

    def retry_delay(self, attempts: int, *, connection_failure: bool = False) -> float:
        """Delay before the next attempt after ``attempts`` failed ones."""
        if connection_failure:
            return self.outbound_connection_failure_retry_interval
        if attempts <= self.transient_failure_retry_count:
            return self.transient_failure_retry_interval
        return self.message_retry_interval
