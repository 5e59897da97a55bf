"""Protocol-neutral errors raised by the gateway and auth layers.

Each protocol maps these to its own reply codes at its edge. The message of an
error is safe to show to an administrator (cmdlet output, logs); client-facing
protocol replies stay generic and never echo it verbatim.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base class of every error the gateway raises on purpose."""


class NotFound(GatewayError):
    """The named object does not exist (cmdlet identity, mailbox, folder, message)."""


class AlreadyExists(GatewayError):
    """Creating the object would duplicate a unique name or address."""


class ValidationError(GatewayError):
    """A value does not satisfy the rules of the object it is set on."""


class Conflict(GatewayError):
    """A concurrent change made the operation impossible (retry may succeed)."""


class StoreUnavailable(GatewayError):
    """The store cannot be reached or refused to commit (a transient failure)."""


class ConfigError(GatewayError):
    """Node settings are invalid. ``problems`` lists every error found at once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))
