"""The open-relay battery, shared by the policy unit tests and the live SMTP tests.

Setting every case assumes (``RELAY_ORG``): one accepted domain ``example.test``
(Authoritative, the default) with the mailbox ``alice@example.test``; an anonymous
client on a connector whose permission groups give anonymous senders no
``ms-Exch-SMTP-Accept-Any-Recipient`` (e.g. "Default Frontend <server>"), sending from
``printer@outside.test``.

Every external-looking recipient must be refused: either as a syntax error at RCPT
(``501 5.1.3 Invalid address``: the strict parser refuses routing syntax outright) or
as a relay attempt (``550 5.7.54``). The ``control`` cases must be accepted, so the suite
proves the setup delivers at all. ``smtputf8`` means the client sends
``RCPT TO:<...>`` after ``MAIL FROM:<...> SMTPUTF8``.

A live server may refuse some syntax earlier (aiosmtpd's own path parser); such a case
still passes live when the reply is a 5xx - ``expected_code`` is what the policy says.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RelayCase:
    id: str
    recipient: str                 # the text between the angle brackets of RCPT TO
    expected_code: int
    expected_enhanced: str
    note: str
    smtputf8: bool = False
    control: bool = False          # an accepted case proving the setup works

    @property
    def refused(self) -> bool:
        return self.expected_code >= 500


RELAY_ORG = {
    "accepted_domain": "example.test",
    "mailbox": "alice@example.test",
    "sender": "printer@outside.test",
}

INVALID = (501, "5.1.3")
RELAY = (550, "5.7.54")
NOT_FOUND = (550, "5.1.10")
OK = (250, "2.1.5")


def _case(id: str, recipient: str, expected: tuple[int, str], note: str, *,
          smtputf8: bool = False, control: bool = False) -> RelayCase:
    return RelayCase(id, recipient, expected[0], expected[1], note, smtputf8, control)


RELAY_CASES: list[RelayCase] = [
    _case("external", "alice@outlook.test", RELAY, "plain external recipient"),
    _case("external-upper", "ALICE@OUTLOOK.TEST", RELAY, "case does not make it local"),
    _case("percent-hack", "alice%outlook.test@example.test", INVALID,
          "percent hack: a downstream host could route to outlook.test"),
    _case("percent-hack-quoted", '"alice%outlook.test"@example.test', INVALID,
          "percent hack inside a quoted local part"),
    _case("percent-encoded-at", "alice%40outlook.test@example.test", INVALID,
          "URL-encoded @ is still a % in the local part"),
    _case("source-route", "@example.test:alice@outlook.test", INVALID,
          "RFC 821 source route through our domain"),
    _case("source-route-multi", "@example.test,@relay.test:alice@outlook.test", INVALID,
          "source route with several hops"),
    _case("quoted-at", '"alice@outlook.test"@example.test', INVALID,
          "an @ inside a quoted local part"),
    _case("quoted-escaped-at", '"alice\\@outlook.test"@example.test', INVALID,
          "a quoted-pair @ inside a quoted local part"),
    _case("double-at", "alice@outlook.test@example.test", INVALID,
          "two @: the last one must not decide"),
    _case("bang-path", "outlook.test!alice@example.test", INVALID,
          "UUCP bang path in the local part"),
    _case("bang-path-bare", "outlook.test!alice", INVALID, "bang path without a domain"),
    _case("ip-literal", "alice@[192.0.2.1]", RELAY,
          "an IPv4 address literal never matches an accepted domain"),
    _case("ip-literal-loopback", "alice@[127.0.0.1]", RELAY,
          "not even our own address"),
    _case("ipv6-literal", "alice@[IPv6:::1]", RELAY, "IPv6 address literal"),
    _case("bad-literal", "alice@[example.test]", INVALID, "a general address literal"),
    _case("trailing-dot-external", "alice@outlook.test.", INVALID,
          "a trailing dot is not RFC 5321 syntax"),
    _case("trailing-dot-local", "alice@example.test.", INVALID,
          "refused even for our own domain: one spelling per domain"),
    _case("double-dot", "alice@example..test", INVALID, "empty label"),
    _case("suffix-domain", "alice@evilexample.test", RELAY,
          "evilexample.test ends with example.test but is another domain"),
    _case("parent-lookalike", "alice@example.test.outlook.test", RELAY,
          "our domain as a prefix of an external one"),
    _case("subdomain", "alice@sub.example.test", RELAY,
          "a subdomain is not accepted without a *.example.test entry"),
    _case("single-label", "alice@outlook", RELAY, "a single-label external domain"),
    _case("idn-lookalike-ascii-only", "alice@ex\u0430mple.test", INVALID,
          "Cyrillic a without SMTPUTF8"),
    _case("idn-lookalike", "alice@ex\u0430mple.test", RELAY,
          "Cyrillic a under SMTPUTF8: its A-label is not example.test", smtputf8=True),
    _case("idn-lookalike-alabel", "alice@xn--exmple-4nf.test", RELAY,
          "the A-label of the look-alike"),
    _case("fullwidth", "alice@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.test", INVALID,
          "full-width letters are not folded to ASCII (IDNA 2008, no UTS 46 mapping)",
          smtputf8=True),
    _case("comment", "alice(x)@example.test", INVALID, "RFC 5322 comments are not SMTP"),
    _case("leading-dot", ".alice@example.test", INVALID, "not a dot-atom"),
    _case("bad-alabel", "alice@xn--.test", INVALID, "an empty A-label"),
    _case("unknown-local", "nobody@example.test", NOT_FOUND,
          "an authoritative domain refuses unknown recipients"),
    _case("local", "alice@example.test", OK, "the mailbox", control=True),
    _case("local-case", "Alice@EXAMPLE.TEST", OK, "addresses compare case-insensitively",
          control=True),
    _case("local-quoted", '"alice"@example.test', OK,
          "a quoted plain local part is the same address", control=True),
]
