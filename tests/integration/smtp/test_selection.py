"""Connector selection on the wire: the Anonymous Relay connector on loopback
addresses and through PROXY headers, nested ranges, no match, and listeners that
follow connector changes without a restart."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import time

import pytest

from tests.integration.smtp.conftest import TRUSTED_PROXY, Harness, RawClient, free_port

RELAY_REFUSED = b"5.7.54 SMTP; Unable to relay recipient in non-accepted domain"


async def _anonymous_relay_setup(h: Harness, relay_ip: str, remote: str) -> int:
    port = free_port()
    await h.connector("Default Frontend", f"0.0.0.0:{port}", apply=False)
    relay = await h.connector("Anonymous Relay", f"{relay_ip}:{port}", remote)
    await h.store.connectors.add_permission(relay.id, "NT AUTHORITY\\ANONYMOUS LOGON",
                                            "Ms-Exch-SMTP-Accept-Any-Recipient")
    await h.apply()
    return port


def _rcpt(host: str, port: int, source: str, rcpt: str) -> tuple[int, bytes]:
    with smtplib.SMTP(host, port, timeout=10, source_address=(source, 0)) as c:
        c.ehlo("printer.lan")
        code, _ = c.mail("printer@devices.test")
        assert code == 250
        return c.rcpt(rcpt)


async def test_anonymous_relay_on_loopback_addresses(harness: Harness) -> None:
    port = await _anonymous_relay_setup(harness, "127.0.0.50", "127.0.0.80")
    # The printer's address on the relay connector's binding: relay granted.
    code, _ = await asyncio.to_thread(_rcpt, "127.0.0.50", port, "127.0.0.80",
                                      "carol@outlook.test")
    assert code == 250
    # Another host, same destination: the Default Frontend connector, no relay.
    assert await asyncio.to_thread(_rcpt, "127.0.0.50", port, "127.0.0.81",
                                   "carol@outlook.test") == (550, RELAY_REFUSED)
    # The printer on another local address: the relay connector's binding does not match.
    assert await asyncio.to_thread(_rcpt, "127.0.0.1", port, "127.0.0.80",
                                   "carol@outlook.test") == (550, RELAY_REFUSED)


def _proxied_rcpt(port: int, header: bytes, rcpt: str, *, source: str = TRUSTED_PROXY
                  ) -> tuple[str, str]:
    c = RawClient("127.0.0.1", port, source=source)
    try:
        c.send(header)
        banner = c.reply()
        c.send(b"EHLO printer.lan\r\n")
        c.reply()
        c.send(b"MAIL FROM:<printer@devices.test>\r\n")
        assert c.reply().startswith("250")
        c.send(b"RCPT TO:<" + rcpt.encode() + b">\r\n")
        return banner, c.reply()
    finally:
        c.close()


async def test_anonymous_relay_through_proxy_v1(harness: Harness) -> None:
    port = await _anonymous_relay_setup(harness, "10.0.0.50", "10.0.0.80")
    header = f"PROXY TCP4 10.0.0.80 10.0.0.50 40000 {port}\r\n".encode()
    _banner, reply = await asyncio.to_thread(_proxied_rcpt, port, header, "carol@outlook.test")
    assert reply == "250 2.1.5 Recipient OK"
    header = f"PROXY TCP4 10.0.0.81 10.0.0.50 40000 {port}\r\n".encode()
    _banner, reply = await asyncio.to_thread(_proxied_rcpt, port, header, "carol@outlook.test")
    assert reply.encode() == b"550 " + RELAY_REFUSED


async def test_anonymous_relay_through_proxy_v2(harness: Harness) -> None:
    port = await _anonymous_relay_setup(harness, "10.0.0.50", "10.0.0.80")
    addresses = (socket.inet_aton("10.0.0.80") + socket.inet_aton("10.0.0.50")
                 + (40000).to_bytes(2, "big") + port.to_bytes(2, "big"))
    header = (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11])
              + len(addresses).to_bytes(2, "big") + addresses)
    _banner, reply = await asyncio.to_thread(_proxied_rcpt, port, header, "carol@outlook.test")
    assert reply == "250 2.1.5 Recipient OK"


async def test_proxy_header_from_untrusted_peer_is_not_honoured(harness: Harness) -> None:
    port = await _anonymous_relay_setup(harness, "10.0.0.50", "10.0.0.80")

    def attempt() -> tuple[str, str]:
        c = RawClient("127.0.0.1", port, source="127.0.0.80")
        try:
            banner = c.reply()
            c.send(f"PROXY TCP4 10.0.0.80 10.0.0.50 40000 {port}\r\n".encode())
            return banner, c.reply()
        finally:
            c.close()
    banner, reply = await asyncio.to_thread(attempt)
    assert banner.startswith("220 ")
    assert reply == "500 5.3.3 Unrecognized command"


async def test_nested_ranges_most_specific_wins(harness: Harness) -> None:
    port = free_port()
    await harness.connector("All", f"0.0.0.0:{port}", banner="220 connector-all",
                            apply=False)
    await harness.connector("Subnet", f"0.0.0.0:{port}", "127.0.0.0-127.0.0.255",
                            banner="220 connector-subnet", apply=False)
    await harness.connector("Host", f"0.0.0.0:{port}", "127.0.0.75",
                            banner="220 connector-host")

    def banner(source: str) -> str:
        c = RawClient("127.0.0.1", port, source=source)
        try:
            return c.reply()
        finally:
            c.close()
    assert await asyncio.to_thread(banner, "127.0.0.75") == "220 connector-host"
    assert await asyncio.to_thread(banner, "127.0.0.100") == "220 connector-subnet"


async def test_no_matching_connector_gets_421(harness: Harness) -> None:
    port = free_port()
    await harness.connector("Only printers", f"127.0.0.1:{port}", "127.0.0.80")

    def attempt() -> tuple[str, bool]:
        c = RawClient("127.0.0.1", port, source="127.0.0.81")
        try:
            return c.reply(), c.closed()
        finally:
            c.close()
    assert await asyncio.to_thread(attempt) == ("421 4.3.2 Service not available", True)


async def test_listeners_follow_connector_changes(harness: Harness) -> None:
    port = free_port()
    created = await harness.connector("Late", f"127.0.0.1:{port}",
                                      banner="220 late connector")
    c = await asyncio.to_thread(RawClient, "127.0.0.1", port)
    assert await asyncio.to_thread(c.reply) == "220 late connector"
    c.close()
    await harness.store.connectors.update_receive_connector(created.id, enabled=False)
    await harness.apply()
    try:
        await asyncio.to_thread(RawClient, "127.0.0.1", port)
        raise AssertionError("the listener of a disabled connector still accepts")
    except ConnectionRefusedError:
        pass


# HAProxy sends the header and the ClientHello back to back (pause 0): the listener
# reads exactly the header from the socket, so the ClientHello reaches the TLS layer.
@pytest.mark.parametrize("pause", [0.3, 0.0])
async def test_proxy_header_then_implicit_tls(harness: Harness, pause: float) -> None:
    port = free_port()
    await harness.client_connector("Client Frontend TLS", f"0.0.0.0:{port}",
                                   "10.0.0.0/8", implicit_tls=True,
                                   banner="220 submission over TLS")

    def run() -> tuple[str, str]:
        raw = socket.create_connection(("127.0.0.1", port), timeout=3,
                                       source_address=(TRUSTED_PROXY, 0))
        raw.sendall(f"PROXY TCP4 10.0.0.80 10.0.0.50 40000 {port}\r\n".encode())
        time.sleep(pause)
        tls = harness.ca.client_context().wrap_socket(raw, server_hostname="127.0.0.1")
        f = tls.makefile("rb")
        try:
            banner = f.readline().decode().strip()
            tls.sendall(b"EHLO laptop\r\n")
            lines = []
            while True:
                line = f.readline().decode().strip()
                lines.append(line)
                if line[3:4] == " ":
                    break
            return banner, "\n".join(lines)
        finally:
            f.close()
            tls.close()
    banner, ehlo = await asyncio.to_thread(run)
    assert banner == "220 submission over TLS"
    assert "Hello [10.0.0.80]" in ehlo  # the client's address from the PROXY header
    assert "AUTH LOGIN PLAIN" in ehlo and "STARTTLS" not in ehlo
