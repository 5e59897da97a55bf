"""Whatever a client or an operator types, the parsers answer with a value or their
own error (AddressError / ValueError), never another exception; and no random
address ever parses to an accepted domain unless it literally is one."""

from __future__ import annotations

import random

import pytest

from gateway.connectors.address import AddressError, parse_address
from gateway.connectors.ranges import parse_binding, parse_ip_range

ALPHABET = ('abcxyz09.-@%!"\\[]:,<> \t\r\n()_+=\u0430\uff45\u00e9\u200b'
            "example.test" * 2)
PIECES = ["example.test", "@", "%", "!", '"', "\\", "[", "]", ":", ",", ".", "IPv6:", "::1",
          "127.0.0.1", "xn--", "evil", "<", ">", " ", "\u0430", "\uff45"]


def _random_text(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 40)))
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 8)))


@pytest.mark.parametrize("seed", range(3))
def test_address_parser_never_escapes(seed):
    rng = random.Random(seed)
    for _ in range(3000):
        text = _random_text(rng)
        for utf8 in (False, True):
            try:
                a = parse_address(text, smtputf8=utf8, allow_null=rng.random() < 0.5)
            except AddressError:
                continue
            assert a.domain == "" or a.domain.isascii()
            assert "%" not in a.local and "!" not in a.local and "@" not in a.local
            if a.domain == "example.test":
                # it parsed to our domain: the text must really end with it
                assert text.lower().rstrip(">").endswith("@example.test"), text


@pytest.mark.parametrize("seed", range(2))
def test_range_and_binding_parsers_never_escape(seed):
    rng = random.Random(seed)
    alphabet = "0123456789abcdef.:/-[]%* "
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        for parse in (parse_binding, parse_ip_range):
            try:
                parse(text)
            except ValueError:
                pass


@pytest.mark.parametrize("seed", range(3))
def test_fast_path_agrees_with_full_parser(seed):
    from gateway.connectors.address import parse_address_full

    rng = random.Random(seed)
    samples = ["alice@example.test", "<a.b+c@x-y.example.test>", "a@123", "a@b.123",
               "x" * 64 + "@example.test", "x" * 65 + "@example.test",
               "a@" + "b" * 63 + ".test", "a@" + "b" * 64 + ".test",
               "a@" + ".".join(["abcdefgh"] * 40), "a@xn--bcher-kva.test", "<a@b.test",
               "a@B.TEST>", "a@-b.test", "a.@b.test", "a@b..test"]
    samples += [_random_text(rng) for _ in range(3000)]
    for text in samples:
        for utf8 in (False, True):
            try:
                fast = parse_address(text, smtputf8=utf8)
            except AddressError:
                fast = None
            try:
                full = parse_address_full(text, smtputf8=utf8)
            except AddressError:
                full = None
            assert fast == full, text
