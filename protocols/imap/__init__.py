"""IMAP4rev1/IMAP4rev2 front end (RFC 3501, RFC 9051) on the common store.

Layers (ARCHITECTURE.md): ``connection`` (bytes in and out, limits, literals),
``parser`` (a command line into typed arguments), ``session`` (the state machine with
one ``do_<command>`` per command and the legal-state table as data), and per command
group the handler modules (``mailboxes``, ``fetch``, ``search``, ``messages``).
``service`` binds the listeners and is the node's entry point; ``idle`` is the
connection idle timer (shared with POP3).
"""
