"""Shared authentication layer: principals, credentials, sans-IO mechanisms,
directories, and the AuthService (throttle, lockout, cache, audit).

Entry points: ``auth.service.AuthService``, ``auth.principal.Principal``,
``auth.mechanisms`` (SASL PLAIN/LOGIN, HTTP Basic), ``auth.directories.local``,
``auth.passwords``. See docs/authentication.md. This package never imports
``protocols``.
"""
