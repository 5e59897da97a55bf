"""``Test-SmtpRelay``: explain what the SMTP front door would do, step by step.

Role: replay one SMTP conversation against the policy - connector selection, the
rights of the principal and where each came from, and the reply at every command -
using the very ``SessionPolicy`` methods the SMTP session calls, so the explanation
is what is enforced (ARCHITECTURE.md, "Policy").

Invariant: nothing here decides anything itself; it only calls the policy and prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from auth.principal import Principal
from gateway.connectors.policy import SessionPolicy, SmtpPolicy
from gateway.connectors.ranges import normalise_ip, parse_binding
from gateway.connectors.replies import Decision
from gateway.connectors.rights import ALL_RIGHTS, effective_rights

CLIENT_NAME = "test-smtp-relay.invalid"


@dataclass
class RelayReport:
    """The explanation as lines, plus the outcome for scripts and tests."""

    lines: list[str] = field(default_factory=list)
    connector: str | None = None
    replies: dict[str, str] = field(default_factory=dict)   # command -> reply line
    accepted_recipients: list[str] = field(default_factory=list)
    refused_recipients: list[str] = field(default_factory=list)

    def add(self, text: str = "") -> None:
        self.lines.append(text)


def _exchange(report: RelayReport, command: str, decision: Decision) -> None:
    report.add(f"  C: {command}")
    report.add(f"  S: {decision.reply}")
    report.add(f"     why: {decision.reason}")
    for check in decision.checks:
        state = "granted" if check.granted else "NOT granted"
        report.add(f"     right {check.right}: {state} - {check.explanation}")
    report.replies[command] = str(decision.reply)


async def explain_relay(policy: SmtpPolicy, *, local_endpoint: str, remote_ip: str,
                        sender: str, recipients: list[str],
                        principal: Principal | None = None, tls: bool = False,
                        size: int | None = None) -> RelayReport:
    """Walk through connect, EHLO, [STARTTLS], [AUTH], MAIL, RCPT... for the given
    client. ``principal`` None means an anonymous client. ValueError for a bad
    ``local_endpoint`` or ``remote_ip``."""
    binding = parse_binding(local_endpoint)
    client = normalise_ip(remote_ip)
    report = RelayReport()
    session: SessionPolicy = await policy.open_session(
        local_ip=str(binding.ip), local_port=binding.port, remote_ip=str(client),
        tls_active=tls)
    snap = session.snapshot
    report.add(f"Connection from {client} to {binding} (server {snap.server_name}, "
               f"organisation version {snap.version})")
    report.add("Connector selection:")
    for line in session.connection.candidates:
        report.add(f"  {line}")
    report.add(f"  => {session.connection.reason}")
    if not session.accepted:
        report.add("")
        report.add("Conversation:")
        report.add(f"  S: {session.connection.reply}   (the connection is then closed)")
        report.replies["connect"] = str(session.connection.reply)
        return report
    connector = session.connector
    report.connector = connector.name
    report.replies["connect"] = session.banner()
    if connector.implicit_tls:
        session.tls_started()
    who = principal.name if principal is not None else session.principal.name
    report.add("")
    report.add(f"Rights of {who} on '{connector.identity}' "
               f"(permission groups: {', '.join(sorted(connector.permission_groups)) or 'none'};"
               f" explicit entries: {len(connector.permissions)}):")
    rights = effective_rights(connector, principal or session.principal)
    for right in ALL_RIGHTS:
        check = rights.check(right)
        report.add(f"  {'+' if check.granted else '-'} {right}: {check.explanation}")
    report.add("")
    report.add("Conversation:")
    if connector.implicit_tls:
        report.add("  (implicit TLS handshake)")
    report.add(f"  S: {session.banner()}")
    report.add(f"  C: EHLO {CLIENT_NAME}")
    keywords = session.ehlo_keywords()
    report.add(f"  S: 250-{session.fqdn} Hello [{client}]")
    for i, word in enumerate(keywords):
        report.add(f"  S: 250{' ' if i == len(keywords) - 1 else '-'}{word}")
    wants_tls = (principal is not None or connector.require_tls) and not session.tls_active
    if wants_tls and "STARTTLS" in keywords:
        decision = session.check_starttls()
        _exchange(report, "STARTTLS", decision)
        if decision.allowed:
            session.tls_started()
            report.add(f"  C: EHLO {CLIENT_NAME}")
            report.add(f"  S: 250 ... {' / '.join(session.ehlo_keywords())}")
    if principal is not None:
        mechanisms = session.auth_mechanisms()
        mechanism = mechanisms[0] if mechanisms else "LOGIN"
        decision = session.check_auth(mechanism)
        if not decision.allowed:
            _exchange(report, f"AUTH {mechanism}", decision)
            report.add("  (the client stays anonymous)")
        else:
            login = principal.login_name or principal.name
            report.add(f"  C: AUTH {mechanism} ... (credentials of {login} assumed correct)")
            _exchange(report, "AUTH result", await session.set_principal(principal))
    mail = await session.check_mail_from(sender, size=size)
    size_part = f" SIZE={size}" if size is not None else ""
    _exchange(report, f"MAIL FROM:<{sender}>{size_part}", mail)
    if not mail.allowed:
        report.add("")
        report.add("Verdict: refused at MAIL FROM; no recipient is tried.")
        report.refused_recipients = list(recipients)
        return report
    accepted = 0
    for rcpt in recipients:
        decision = await session.check_rcpt_to(rcpt, accepted_so_far=accepted)
        _exchange(report, f"RCPT TO:<{rcpt}>", decision)
        if decision.allowed:
            accepted += 1
            report.accepted_recipients.append(rcpt)
        else:
            report.refused_recipients.append(rcpt)
    report.add("")
    if report.accepted_recipients:
        report.add(f"Verdict: accepted for {', '.join(report.accepted_recipients)}"
                   + (f"; refused for {', '.join(report.refused_recipients)}"
                      if report.refused_recipients else "") + ".")
    else:
        report.add("Verdict: every recipient refused; DATA would get "
                   "503 5.5.2 Need rcpt command.")
    return report
