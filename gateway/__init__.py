"""The gateway: composition root, node settings, organisation configuration, policy,
store and relay. See docs/architecture.md for the map."""

__version__ = "0.1.0"
