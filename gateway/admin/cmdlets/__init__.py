"""The built-in cmdlets. Importing this package declares them in ``REGISTRY``.

One module per noun group; a later issue adds its cmdlets by adding a module here
(connectors, queues, protocol settings) and importing it below.
"""

from gateway.admin.cmdlets import (  # noqa: F401
    casmailbox,
    certificates,
    connectors,
    core,
    domains,
    mailboxes,
    organization,
    protocol_settings,
    relay,
    virtual_directories,
)
