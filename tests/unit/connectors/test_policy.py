"""The SMTP policy decisions and their exact Exchange replies (exchange-semantics.md
§4.2), with an in-memory organisation."""

from __future__ import annotations

import dataclasses

import pytest

from auth.principal import ANONYMOUS
from gateway.connectors import ADPermission
from tests.unit.connectors import org
from tests.unit.connectors.relay_cases import RELAY_CASES

RELAY_DENIED = "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain"
NOT_FOUND = ("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP "
             "address lookup")


async def test_case_1_user_to_local():
    s = org.session(port=587, tls=True)
    assert s.connector.name == "Client Frontend mail1"
    assert (await s.set_principal(org.user())).reply.code == 235
    assert str((await s.check_mail_from("<alice@example.test>")).reply) == "250 2.1.0 Sender OK"
    d = await s.check_rcpt_to("bob@example.test", accepted_so_far=0)
    assert str(d.reply) == "250 2.1.5 Recipient OK"
    assert d.route == "local" and d.mailbox_id == 2


async def test_case_2_user_to_external_relays():
    s = org.session(port=587, tls=True)
    await s.set_principal(org.user())
    await s.check_mail_from("alice@example.test")
    d = await s.check_rcpt_to("someone@outlook.test", accepted_so_far=0)
    assert d.allowed and d.route == "relay"
    assert d.checks[0].granted and "ExchangeUsers" in d.checks[0].explanation


async def test_case_3_anonymous_to_local():
    s = org.session()
    assert s.connector.name == "Default Frontend mail1"
    assert (await s.check_mail_from("printer@outside.test")).allowed
    d = await s.check_rcpt_to("alice@example.test", accepted_so_far=0)
    assert d.allowed and d.route == "local" and d.mailbox_id == 1


async def test_case_4_anonymous_to_external_refused_unless_relay_connector():
    s = org.session()
    d = await s.check_rcpt_to("alice@outlook.test", accepted_so_far=0)
    assert str(d.reply) == RELAY_DENIED and not d.allowed and d.route == "none"
    assert "not granted to NT AUTHORITY\\ANONYMOUS LOGON" in d.checks[0].explanation

    snap = org.snapshot([*org.defaults(), org.anonymous_relay()])
    printer = org.session(snap, local="10.0.0.50", remote="10.0.0.80")
    assert printer.connector.name == "Anonymous Relay"
    assert (await printer.check_mail_from("printer@example.test")).allowed
    d = await printer.check_rcpt_to("alice@outlook.test", accepted_so_far=0)
    assert d.allowed and d.route == "relay"
    assert "explicit permission for NT AUTHORITY\\ANONYMOUS LOGON" in d.checks[0].explanation
    # another host on the same address is not the printer
    other = org.session(snap, local="10.0.0.50", remote="10.0.0.81")
    assert other.connector.name == "Default Frontend mail1"
    assert not (await other.check_rcpt_to("alice@outlook.test", accepted_so_far=0)).allowed


async def test_deny_beats_allow():
    relay = org.anonymous_relay()
    relay = dataclasses.replace(relay, permissions=(
        *relay.permissions,
        ADPermission("NT AUTHORITY\\ANONYMOUS LOGON", "ms-Exch-SMTP-Accept-Any-Recipient",
                     deny=True)))
    s = org.session(org.snapshot([relay]), local="10.0.0.50", remote="10.0.0.80")
    d = await s.check_rcpt_to("alice@outlook.test", accepted_so_far=0)
    assert str(d.reply) == RELAY_DENIED
    assert "Deny beats every Allow" in d.checks[0].explanation
    # a Deny of Submit on a group-granted right
    deny_submit = dataclasses.replace(relay, permissions=(
        ADPermission("Everyone", "ms-Exch-SMTP-Submit", deny=True),))
    s = org.session(org.snapshot([deny_submit]), local="10.0.0.50", remote="10.0.0.80")
    d = await s.check_mail_from("printer@outside.test")
    assert str(d.reply) == ("530 5.7.57 SMTP; Client was not authenticated to send "
                            "anonymous mail during MAIL FROM")


async def test_no_connector_is_421():
    snap = org.snapshot([org.anonymous_relay()])
    s = org.session(snap, local="10.0.0.50", remote="10.0.0.81")
    assert not s.accepted and str(s.connection.reply) == "421 4.3.2 Service not available"
    assert "no remote IP range contains 10.0.0.81" in s.connection.candidates[0]
    s = org.session(snap, local="10.0.0.51", remote="10.0.0.80")
    assert not s.accepted
    with pytest.raises(RuntimeError):
        s.connector  # noqa: B018


async def test_submit_needed_on_587():
    s = org.session(port=587)
    d = await s.check_mail_from("printer@outside.test")
    assert str(d.reply) == ("530 5.7.57 SMTP; Client was not authenticated to send "
                            "anonymous mail during MAIL FROM")


async def test_auth_without_submit_fails():
    s = org.session(org.snapshot([org.anonymous_relay()]), local="10.0.0.50",
                    remote="10.0.0.80", tls=True)
    d = await s.set_principal(org.user())
    assert str(d.reply) == "535 5.7.3 Authentication unsuccessful"
    assert s.principal is ANONYMOUS


async def test_sender_rules():
    anon = org.session()
    # anonymous claiming an authoritative domain: the default AnonymousUsers grant has AuthD
    assert (await anon.check_mail_from("alice@example.test")).allowed
    no_authd = dataclasses.replace(org.defaults()[0], permissions=(
        ADPermission("NT AUTHORITY\\ANONYMOUS LOGON",
                     "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender", deny=True),))
    s = org.session(org.snapshot([no_authd]))
    d = await s.check_mail_from("alice@example.test")
    assert str(d.reply) == ("550 5.7.60 SMTP; Client does not have permissions to send "
                            "as this sender")
    assert (await s.check_mail_from("x@outside.test")).allowed
    assert (await s.check_mail_from("x@relay.example.test")).allowed   # not authoritative
    assert (await s.check_mail_from("<>")).allowed

    u = org.session(port=587, tls=True)
    await u.set_principal(org.user())
    assert (await u.check_mail_from("ALICE.SMITH@example.test")).allowed  # own alias
    d = await u.check_mail_from("bob@example.test")
    assert d.reply.enhanced == "5.7.60"
    assert d.checks[-1].right == "ms-Exch-SMTP-Accept-Any-Sender"
    granted = dataclasses.replace(u.connector, permissions=(
        ADPermission("EXAMPLE\\alice", "ms-Exch-SMTP-Accept-Any-Sender"),))
    u2 = org.session(org.snapshot([granted]), port=587, tls=True)
    await u2.set_principal(org.user())
    assert (await u2.check_mail_from("bob@example.test")).allowed


async def test_mail_from_syntax_size_and_tls():
    s = org.session()
    assert str((await s.check_mail_from("not an address")).reply) == "501 5.1.7 Invalid address"
    big = await s.check_mail_from("x@outside.test", size=37748737)
    assert str(big.reply) == "552 5.3.4 Message size exceeds fixed maximum message size"
    assert (await s.check_mail_from("x@outside.test", size=37748736)).allowed
    tls_only = dataclasses.replace(org.defaults()[0], require_tls=True)
    s = org.session(org.snapshot([tls_only]))
    assert str((await s.check_mail_from("x@outside.test")).reply) == \
        "451 5.7.3 STARTTLS is required to send mail"
    s.tls_started()
    assert (await s.check_mail_from("x@outside.test")).allowed


async def test_recipient_limit_and_domain_types():
    s = org.session()
    small = dataclasses.replace(s.connector, max_recipients_per_message=2)
    s = org.session(org.snapshot([small]))
    assert (await s.check_rcpt_to("alice@example.test", accepted_so_far=1)).allowed
    d = await s.check_rcpt_to("alice@example.test", accepted_so_far=2)
    assert str(d.reply) == "452 4.5.3 Too many recipients"
    s = org.session()
    assert str((await s.check_rcpt_to("nobody@example.test", accepted_so_far=0)).reply) \
        == NOT_FOUND
    d = await s.check_rcpt_to("carol@relay.example.test", accepted_so_far=0)
    assert d.route == "local"
    d = await s.check_rcpt_to("dave@relay.example.test", accepted_so_far=0)
    assert d.allowed and d.route == "relay"           # InternalRelay: routed out
    d = await s.check_rcpt_to("anyone@external-relay.test", accepted_so_far=0)
    assert d.allowed and d.route == "relay"           # ExternalRelay
    assert str((await s.check_rcpt_to("x@a.wild.test", accepted_so_far=0)).reply) == NOT_FOUND
    assert str((await s.check_rcpt_to("x@wild.test", accepted_so_far=0)).reply) == RELAY_DENIED
    assert str((await s.check_rcpt_to("bad", accepted_so_far=0)).reply) == \
        "501 5.1.3 Invalid address"


def test_ehlo_and_auth_offers():
    s = org.session(port=587)
    # Client Frontend (Tls, BasicAuth, BasicAuthRequireTLS, Integrated): before TLS only
    # NTLM is offered, as Exchange's 587 shows "AUTH NTLM" before STARTTLS.
    assert s.ehlo_keywords() == ["SIZE 37748736", "PIPELINING", "ENHANCEDSTATUSCODES",
                                 "STARTTLS", "AUTH NTLM", "8BITMIME", "SMTPUTF8"]
    assert s.auth_mechanisms() == ("NTLM",)
    assert str(s.check_auth("LOGIN").reply) == "504 5.7.4 Unrecognized authentication type"
    assert str(s.check_starttls().reply) == "220 2.0.0 SMTP server ready"
    s.tls_started()
    assert "AUTH LOGIN PLAIN NTLM" in s.ehlo_keywords()
    assert "STARTTLS" not in s.ehlo_keywords()
    assert s.auth_mechanisms(client_certificate=True) == ("LOGIN", "PLAIN", "NTLM", "EXTERNAL")
    assert s.check_auth("plain").allowed
    assert str(s.check_starttls().reply) == ("503 5.5.2 Only one STARTTLS command can be "
                                             "issued per session")
    no_require = dataclasses.replace(s.connector,
                                     auth_mechanism=frozenset({"Tls", "BasicAuth"}))
    plain = org.session(org.snapshot([no_require]), port=587)
    assert plain.auth_mechanisms() == ("LOGIN", "PLAIN")
    custom = org.session(org.snapshot([org.connector("c", auth_mechanism=frozenset({"None"}))]))
    assert custom.ehlo_keywords()[3:] == ["8BITMIME", "SMTPUTF8"]
    assert str(custom.check_starttls().reply) == "500 5.3.3 Unrecognized command"


async def test_already_authenticated_and_headers():
    s = org.session(port=587, tls=True)
    await s.set_principal(org.user())
    assert str(s.check_auth("LOGIN").reply) == "503 5.5.2 Already authenticated"
    assert "AUTH LOGIN PLAIN" not in s.ehlo_keywords()
    assert s.headers_to_strip() == {"x-ms-exchange-organization-", "x-ms-exchange-forest-"}


def test_banner_and_end_of_data():
    s = org.session()
    assert s.banner().startswith("220 mail1 Microsoft ESMTP MAIL Service ready at ")
    assert s.connection.reply.code == 220
    custom = dataclasses.replace(s.connector, banner="220 hello", fqdn="mx.example.test")
    c = org.session(org.snapshot([custom]))
    assert c.banner() == "220 hello" and c.fqdn == "mx.example.test"
    assert str(s.check_message_size(37748737).reply) == \
        "552 5.3.4 Message size exceeds fixed maximum message size"
    assert s.check_message_size(100).allowed
    assert str(s.check_hop_count(31).reply) == "554 5.4.6 Hop count exceeded - possible mail loop"
    assert s.check_hop_count(30).allowed


@pytest.mark.parametrize("case", RELAY_CASES, ids=lambda c: c.id)
async def test_relay_battery(case):
    s = org.session(remote="203.0.113.9")
    assert (await s.check_mail_from("printer@outside.test", smtputf8=case.smtputf8)).allowed
    d = await s.check_rcpt_to(case.recipient, accepted_so_far=0, smtputf8=case.smtputf8)
    assert (d.reply.code, d.reply.enhanced) == (case.expected_code, case.expected_enhanced), \
        d.reason
    assert d.allowed == (not case.refused)
    if d.allowed:
        assert d.route == "local"
