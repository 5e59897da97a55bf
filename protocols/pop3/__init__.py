"""POP3 front end (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 SASL) over the Inbox.

Modules: ``wire`` (line I/O, byte-stuffing), ``commands`` (parser and state table),
``maildrop`` (the per-session Inbox snapshot), ``readahead`` (message contents read
in windows ahead of the client), ``session`` (AUTHORIZATION state and dispatch),
``transaction`` (TRANSACTION and UPDATE commands), ``service`` (listeners and
organisation settings). See docs/pop3.md.
"""
