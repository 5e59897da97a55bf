"""SMTP front door: Exchange-style receive connectors on the wire (issue 3).

``SmtpService`` (``protocols.smtp.service``) is what the node runs; ``SmtpSession``
speaks the protocol; ``gateway.connectors`` decides (docs/dev/smtp-policy.md).
"""
