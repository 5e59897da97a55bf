"""Reply texts the SMTP session itself produces (the state machine and the framing).

Role: one place for the Exchange 2016/2019 texts (reference exchange-semantics.md
§4.2) that are not policy decisions; the policy (``gateway.connectors``) returns its
own reply lines. RFC 3463 enhanced codes throughout.
"""

from __future__ import annotations

SEND_HELLO_FIRST = "503 5.5.2 Send hello first"
NEED_MAIL = "503 5.5.2 Need mail command"
NEED_RCPT = "503 5.5.2 Need rcpt command"
SENDER_ALREADY = "503 5.5.2 Sender already specified"
BAD_SEQUENCE = "503 5.5.1 Bad sequence of commands"
UNRECOGNIZED = "500 5.3.3 Unrecognized command"
LINE_TOO_LONG = "500 5.5.2 Line too long"
INVALID_ARGS = "501 5.5.4 Invalid arguments"
INVALID_DOMAIN = "501 5.5.4 Invalid domain name"
HELO_NEEDS_DOMAIN = "501 5.0.0 EHLO requires domain address"
UNSUPPORTED_OPTION = "555 5.5.4 Unsupported option: {}"
BAD_SIZE = "501 5.5.4 Invalid SIZE parameter"

START_MAIL_INPUT = "354 Start mail input; end with <CRLF>.<CRLF>"
QUEUED = "250 2.6.0 {message_id} [InternalId={internal_id}, Hostname={hostname}] " \
         "Queued mail for delivery"
TOO_LARGE = "552 5.3.4 Message size exceeds fixed maximum message size"
TEMPORARY_ERROR = "451 4.7.0 Temporary server error. Please try again later"

OK = "250 2.0.0 OK"
RESETTING = "250 2.0.0 Resetting"
CANNOT_VRFY = "252 2.1.5 Cannot VRFY user"
NOT_IMPLEMENTED = "502 5.3.3 Command not implemented"
CLOSING = "221 2.0.0 Service closing transmission channel"

AUTH_FAILED = "535 5.7.3 Authentication unsuccessful"
AUTH_CANCELLED = "501 5.7.0 Authentication cancelled"
AUTH_BAD_DATA = "501 5.5.2 Cannot Base64-decode Client responses"
AUTH_UNAVAILABLE = "454 4.7.0 Temporary authentication failure"
AUTH_NEEDS_MECHANISM = "501 5.5.4 Syntax: AUTH mechanism [initial-response]"

STARTTLS_PIPELINED = "554 5.5.1 Error: data sent before the TLS handshake (RFC 3207 §4.2)"

SERVICE_NOT_AVAILABLE = "421 4.3.2 Service not available"
TOO_MANY_CONNECTIONS = "421 4.3.2 The maximum number of concurrent connections has " \
                       "exceeded a limit, closing transmission channel"
TOO_MANY_ERRORS = "421 4.7.0 Too many errors on this connection, closing transmission channel"
INACTIVITY_TIMEOUT = "451 4.7.0 Timeout waiting for client input"
CONNECTION_TIMEOUT = "421 4.4.1 Connection timed out"
RATE_LIMITED = "421 4.4.2 Message submission rate for this client has exceeded the " \
               "configured limit"
SHUTTING_DOWN = "421 4.3.2 Service not active"
