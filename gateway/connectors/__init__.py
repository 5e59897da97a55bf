"""Receive connectors, their permissions, and the SMTP receive policy.

The public API is described in docs/dev/smtp-policy.md (the contract with the SMTP
session) and docs/connectors.md (for operators).
"""

from gateway.connectors.address import AddressError, SmtpAddress, parse_address
from gateway.connectors.defaults import ensure_default_connectors
from gateway.connectors.model import ADPermission, ReceiveConnector
from gateway.connectors.policy import (
    ConnectionDecision,
    ListenEndpoint,
    SessionPolicy,
    SmtpPolicy,
    decide_connection,
    listen_endpoints,
)
from gateway.connectors.ranges import Binding, IPRange, parse_binding, parse_ip_range
from gateway.connectors.replies import Decision, RecipientDecision, Reply
from gateway.connectors.rights import EffectiveRights, RightCheck, effective_rights
from gateway.connectors.snapshot import OrgSnapshot, SnapshotCache, load_snapshot

__all__ = [
    "ADPermission",
    "AddressError",
    "Binding",
    "ConnectionDecision",
    "Decision",
    "EffectiveRights",
    "IPRange",
    "ListenEndpoint",
    "OrgSnapshot",
    "ReceiveConnector",
    "RecipientDecision",
    "Reply",
    "RightCheck",
    "SessionPolicy",
    "SmtpAddress",
    "SmtpPolicy",
    "SnapshotCache",
    "decide_connection",
    "effective_rights",
    "ensure_default_connectors",
    "listen_endpoints",
    "load_snapshot",
    "parse_address",
    "parse_binding",
    "parse_ip_range",
]
