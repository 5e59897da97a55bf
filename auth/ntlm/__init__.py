"""NTLM (MS-NLMP), server side, NTLMv2 only.

Modules: ``messages`` (the NEGOTIATE / CHALLENGE / AUTHENTICATE wire format),
``verify`` (NTLMv2 response, MIC and channel-binding checks against an NT hash),
``exchange`` (the sans-IO three-message state machine shared by SASL and HTTP),
``http`` (``WWW-Authenticate: NTLM`` / ``Negotiate`` for one TCP connection).
The SASL mechanism is ``auth.mechanisms.ntlm.NtlmMechanism``. See
docs/authentication.md, "NTLM".
"""
