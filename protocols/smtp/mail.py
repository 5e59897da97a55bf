"""The mail transaction: MAIL, RCPT and DATA (RFC 5321 §3.3, §4.1.1.2-4).

Role: parse the arguments, ask the policy at the command where Exchange decides
(reference §4.2: Submit and sender rights at MAIL, relay and recipients per RCPT, size
at ``MAIL SIZE=`` and again at end of data), read the body on large buffers
(``protocols.smtp.data``) and hand the message to ``protocols.smtp.accept``.

Invariants: ``250 2.6.0`` is sent only after the message is durable; a transaction
whose DATA failed leaves nothing behind; the body is never logged.
"""

from __future__ import annotations

import logging
import time

from gateway.errors import GatewayError
from protocols.smtp import replies
from protocols.smtp.accept import accept_message, record
from protocols.smtp.core import GREETED, MAIL, RCPT, SessionCore, Transaction
from protocols.smtp.data import DataDecoder
from protocols.smtp.parser import CommandSyntaxError, parse_path_argument

log = logging.getLogger("protocols.smtp")

BODY_TYPES = frozenset({"7BIT", "8BITMIME"})  # RFC 6152; BINARYMIME needs CHUNKING
STORE_SIZE_CEILING = 2 * 1024 * 1024 * 1024


class MailCommands(SessionCore):
    """MAIL / RCPT / DATA handlers (mixed into ``SmtpSession``)."""

    async def do_MAIL(self, arg: str) -> None:
        try:
            path = parse_path_argument(arg, "FROM")
        except CommandSyntaxError as exc:
            await self.protocol_error(exc.reply)
            return
        size: int | None = None
        smtputf8 = False
        for key, value in path.params.items():
            if key == "SIZE":  # RFC 1870 §6
                if value is None or not value.isdigit() or len(value) > 20:
                    await self.protocol_error(replies.BAD_SIZE)
                    return
                size = int(value)
            elif key == "BODY":
                if value is None or value.upper() not in BODY_TYPES:
                    await self.protocol_error(replies.UNSUPPORTED_OPTION.format(key))
                    return
            elif key == "SMTPUTF8" and value is None and self.smtputf8_offered:
                smtputf8 = True  # RFC 6531 §3.4
            elif key == "AUTH":
                pass  # RFC 4954 §5: may be ignored by a server that does not trust it
            else:
                await self.protocol_error(replies.UNSUPPORTED_OPTION.format(key))
                return
        try:
            decision = await self.policy.check_mail_from(path.path, size=size,
                                                         smtputf8=smtputf8)
        except GatewayError as exc:  # the store is unreachable: a temporary failure
            log.warning("smtp %s: MAIL FROM not checked: %s", self.info.connection_id, exc)
            self.reply(replies.TEMPORARY_ERROR)
            return
        if not decision.allowed:
            log.info("smtp %s: MAIL FROM %s refused: %s", self.info.connection_id,
                     path.path[:200], decision.reason)
            await self.refuse(str(decision.reply))
            return
        if not self._rate_allowed():
            log.info("smtp %s: MessageRateLimit of %s reached for %s",
                     self.info.connection_id, self.connector_id, self._rate_key())
            await self.close_with(replies.RATE_LIMITED)
        self.tx = Transaction(sender=path.path[1:-1], sender_text=path.path,
                              smtputf8=smtputf8, declared_size=size)
        self.state = MAIL
        self.reply(str(decision.reply))

    async def do_RCPT(self, arg: str) -> None:
        try:
            path = parse_path_argument(arg, "TO")
        except CommandSyntaxError as exc:
            await self.protocol_error(exc.reply)
            return
        for key in path.params:  # DSN (RFC 3461) is not offered: no parameters
            await self.protocol_error(replies.UNSUPPORTED_OPTION.format(key))
            return
        try:
            decision = await self.policy.check_rcpt_to(
                path.path, accepted_so_far=len(self.tx.recipients), smtputf8=self.tx.smtputf8)
        except GatewayError as exc:  # the store is unreachable: a temporary failure
            log.warning("smtp %s: RCPT TO not checked: %s", self.info.connection_id, exc)
            self.reply(replies.TEMPORARY_ERROR)
            return
        if not decision.allowed:
            log.info("smtp %s: RCPT TO %s refused: %s", self.info.connection_id,
                     path.path[:200], decision.reason)
            await self.refuse(str(decision.reply))
            return
        self.tx.recipients.append(decision)
        self.state = RCPT
        self.reply(str(decision.reply))

    async def do_DATA(self, arg: str) -> None:
        if arg:
            await self.protocol_error(replies.INVALID_ARGS)
            return
        self.reply(replies.START_MAIL_INPUT)
        connector = self.policy.connector
        cap = connector.max_message_size
        if self.policy.check_message_size(cap + 1).allowed:  # BypassMessageSizeLimit
            cap = min(self.ctx.store.max_message_size, STORE_SIZE_CEILING)
        decoder = DataDecoder(cap)
        rest = decoder.feed(bytes(self.buffer)) if self.buffer else b""
        self.buffer.clear()
        while not decoder.done:
            rest = decoder.feed(await self.read_chunk())
        self.buffer += rest
        tx = self.tx
        self.tx = Transaction()
        self.state = GREETED
        self.plog("*", "", f"{decoder.size} octets received"
                  + (f", {decoder.bare_line_ends} bare CR/LF normalised"
                     if decoder.bare_line_ends else ""))
        if decoder.bare_line_ends:
            log.info("smtp %s: normalised %d bare CR/LF in DATA from %s",
                     self.info.connection_id, decoder.bare_line_ends, self.info.remote_ip)
        if decoder.too_large:
            self.reply(replies.TOO_LARGE)
            return
        size_check = self.policy.check_message_size(decoder.size)
        if not size_check.allowed:
            self.reply(str(size_check.reply))
            return
        line, events = await accept_message(self, tx, decoder.content())
        self.reply(line)
        if events:
            record(self, events)
            connector = self.policy.connector
            self.ctx.rates.record(connector.id, self._rate_key(),
                                  connector.message_rate_limit, time.monotonic())

    def _rate_key(self) -> str:
        principal = self.policy.principal
        return self.info.remote_ip if principal.is_anonymous else principal.name

    def _rate_allowed(self) -> bool:
        connector = self.policy.connector
        return self.ctx.rates.allowed(connector.id, self._rate_key(),
                                      connector.message_rate_limit, time.monotonic())
