"""Directory implementations behind ``auth.directory.Directory``: the local store
(``local``) and LDAP (``ldap``, with its connection pool in ``ldap_pool``)."""
