"""Directory implementations behind ``auth.directory.Directory`` (local store; LDAP later)."""
