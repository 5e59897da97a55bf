"""Shared authentication layer: principals, credentials, sans-IO mechanisms,
directories, and the AuthService (throttle, lockout, cache, audit)."""
