"""The relay engine: durable queue, categoriser, routing, delivery agents, retries,
DSNs and message tracking (docs/relay.md).

Front ends (SMTP, web compose, ActiveSync SendMail) hand accepted mail to
``Relay.submit``; ``RelayService`` runs the queue workers inside a node.
"""

from gateway.relay.engine import QueuedMessage, Relay
from gateway.relay.settings import TransportSettings

__all__ = ["QueuedMessage", "Relay", "TransportSettings"]
