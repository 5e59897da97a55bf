"""The one error type the admin shell raises.

``CmdletError.message`` is written for the operator: it names the cmdlet, parameter or
column at fault and, where one exists, the nearest valid name. It never contains a
secret (password values are redacted before any message is built) and never a
traceback; unexpected failures are logged and reported as a short internal error.
"""

from __future__ import annotations


class CmdletError(Exception):
    """A cmdlet line could not be parsed, bound or executed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
