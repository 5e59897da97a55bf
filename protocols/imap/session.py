"""The IMAP session: the state machine (RFC 9051 §3) and the command dispatcher.

Role: read commands from the connection, check each against ``COMMANDS`` - the table of
which command is legal in which state, and whether the untagged EXPUNGE responses
owed to the client may be sent when it completes (RFC 3501 §7.4.1: not after FETCH,
STORE or SEARCH) - run its ``do_<command>`` handler, then write the mailbox updates and
the tagged response.

Invariants: every client input ends in a tagged OK/NO/BAD, an untagged BAD or a BYE -
never a traceback; errors of the store and the auth layer are mapped to response codes
here; idle timeouts are 1 minute before login and 30 minutes after (ImapSettings may
change them); a connection closes after ``MAX_BAD_COMMANDS`` bad commands in a row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from gateway.errors import AlreadyExists, NotFound, StoreUnavailable, ValidationError
from gateway.listeners.idle import IdleWatch
from gateway.listeners.stream import ConnectionInfo
from protocols.imap import limits
from protocols.imap.connection import Connection, ConnectionClosed, FatalInput, RefusedCommand
from protocols.imap.parser import Cursor, ParseError
from protocols.imap.search import SearchCommands
from protocols.imap.state import Bad, Bye, ImapContext, No, State

log = logging.getLogger("protocols.imap")

NOT_AUTH = frozenset({State.NOT_AUTHENTICATED})
AUTHED = frozenset({State.AUTHENTICATED, State.SELECTED})
ANY = NOT_AUTH | AUTHED
SELECTED = frozenset({State.SELECTED})


@dataclass(frozen=True)
class CommandSpec:
    states: frozenset[State]
    handler: str  # the do_<handler> method
    expunge_ok: bool = True  # may pending EXPUNGEs be sent at completion


COMMANDS: dict[str, CommandSpec] = {
    # RFC 9051 §6.1: any state
    "CAPABILITY": CommandSpec(ANY, "capability"),
    "NOOP": CommandSpec(ANY, "noop"),
    "LOGOUT": CommandSpec(ANY, "logout"),
    "ID": CommandSpec(ANY, "id"),
    # §6.2: not authenticated
    "STARTTLS": CommandSpec(NOT_AUTH, "starttls"),
    "LOGIN": CommandSpec(NOT_AUTH, "login"),
    "AUTHENTICATE": CommandSpec(NOT_AUTH, "authenticate"),
    # §6.3: authenticated (and selected)
    "ENABLE": CommandSpec(AUTHED, "enable"),
    "SELECT": CommandSpec(AUTHED, "select"),
    "EXAMINE": CommandSpec(AUTHED, "examine"),
    "NAMESPACE": CommandSpec(AUTHED, "namespace"),
    "CREATE": CommandSpec(AUTHED, "create"),
    "DELETE": CommandSpec(AUTHED, "delete"),
    "RENAME": CommandSpec(AUTHED, "rename"),
    "SUBSCRIBE": CommandSpec(AUTHED, "subscribe"),
    "UNSUBSCRIBE": CommandSpec(AUTHED, "unsubscribe"),
    "LIST": CommandSpec(AUTHED, "list"),
    "LSUB": CommandSpec(AUTHED, "lsub"),
    "STATUS": CommandSpec(AUTHED, "status"),
    "APPEND": CommandSpec(AUTHED, "append"),
    "IDLE": CommandSpec(AUTHED, "idle"),
    # §6.4: selected
    "CHECK": CommandSpec(SELECTED, "check"),
    "CLOSE": CommandSpec(SELECTED, "close"),
    "UNSELECT": CommandSpec(SELECTED, "unselect"),
    "EXPUNGE": CommandSpec(SELECTED, "expunge"),
    "SEARCH": CommandSpec(SELECTED, "search", expunge_ok=False),
    "FETCH": CommandSpec(SELECTED, "fetch", expunge_ok=False),
    "STORE": CommandSpec(SELECTED, "store", expunge_ok=False),
    "COPY": CommandSpec(SELECTED, "copy"),
    "MOVE": CommandSpec(SELECTED, "move"),
    "UID SEARCH": CommandSpec(SELECTED, "search"),
    "UID FETCH": CommandSpec(SELECTED, "fetch"),
    "UID STORE": CommandSpec(SELECTED, "store"),
    "UID COPY": CommandSpec(SELECTED, "copy"),
    "UID MOVE": CommandSpec(SELECTED, "move"),
    "UID EXPUNGE": CommandSpec(SELECTED, "expunge"),
}


class Session(SearchCommands):
    """One IMAP connection from greeting to close."""

    def __init__(self, ctx: ImapContext, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, info: ConnectionInfo) -> None:
        self.ctx = ctx
        self.conn = Connection(reader, writer)
        self.conn.append_limit = ctx.max_message_size
        self.info = info
        self.state = State.NOT_AUTHENTICATED
        self.principal = None
        self.lease = None
        self.selected = None
        self.inbox = None
        self.enabled = set()
        self.condstore = False
        self.bad_in_a_row = 0
        self.idle = IdleWatch()  # the autologout timer (RFC 9051 §5.4)

    async def run(self) -> None:
        try:
            banner = self.policy.banner or f"{self.ctx.server_name} IMAP4 service ready"
            self.untagged(f"OK [CAPABILITY {' '.join(self.capabilities())}] {banner}")
            await self.conn.flush()
            while self.state is not State.LOGOUT:
                timeout = (self.policy.pre_authenticated_connection_timeout
                           if self.principal is None
                           else self.policy.authenticated_connection_timeout)
                try:
                    segments = await self.idle.wait(self.conn.read_command(), timeout)
                except TimeoutError:
                    await self._bye("Autologout; idle for too long")
                    return
                except RefusedCommand as refused:
                    await self.conn.send(refused.response.encode() + b"\r\n")
                    continue
                except FatalInput as exc:
                    await self._bye(f"{exc}")
                    return
                if not await self.execute(segments):
                    return
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("imap %s: internal error", self.info.connection_id)
            with contextlib.suppress(Exception):
                await self._bye("Internal server error")
        finally:
            self.idle.close()
            if self.lease is not None:
                self.lease.release()

    async def _bye(self, text: str) -> None:
        with contextlib.suppress(ConnectionClosed, OSError):
            await self.conn.send(f"* BYE {text}\r\n".encode())

    async def execute(self, segments: list[bytes]) -> bool:
        """Run one command; False when the connection must close."""
        cur = Cursor(segments)
        try:
            tag = cur.atom(extra=b"]")
            if "+" in tag:
                raise ParseError("bad tag")
            cur.sp()
            name = cur.atom().upper()
            if name == "UID":
                cur.sp()
                name = "UID " + cur.atom().upper()
        except ParseError:
            return await self._bad_line("* BAD Missing or invalid tag or command")
        spec = COMMANDS.get(name)
        if spec is None:
            return await self._bad_line(f"{tag} BAD Unknown command")
        if self.state not in spec.states:
            return await self._bad_line(f"{tag} BAD Command not allowed in the "
                                        f"{self.state.value} state")
        handler = getattr(self, "do_" + spec.handler)
        status = "OK"
        code: str | None = None
        try:
            text = await handler(tag, cur, name.startswith("UID "))
        except ParseError as exc:
            status, text = "BAD", f"Syntax error: {exc}"
        except Bad as exc:
            status, text = "BAD", str(exc)
        except No as exc:
            status, text, code = "NO", exc.text, exc.code
        except Bye as exc:
            await self.conn.flush()
            await self._bye(str(exc))
            return False
        except NotFound:
            status, text, code = "NO", "No such mailbox or message", "NONEXISTENT"
        except AlreadyExists:
            status, text, code = "NO", "Already exists", "ALREADYEXISTS"
        except ValidationError as exc:
            status, text, code = "NO", str(exc), "CANNOT"
        except StoreUnavailable:
            log.warning("imap %s: store unavailable", self.info.connection_id)
            status, text, code = "NO", "Temporarily unavailable", "UNAVAILABLE"
        if status == "BAD":
            self.bad_in_a_row += 1
            if self.bad_in_a_row >= limits.MAX_BAD_COMMANDS:
                await self._bye("Too many invalid commands")
                return False
        else:
            self.bad_in_a_row = 0
        if self.state is State.SELECTED:
            try:
                await self.sync(allow_expunge=spec.expunge_ok)
            except Bye as exc:
                await self._bye(str(exc))
                return False
        if text == "" and status == "OK":  # STARTTLS answered before the handshake
            return True
        line = f"{tag} {status} " + (f"[{code}] " if code else "") + text
        await self.conn.send(line.encode("utf-8") + b"\r\n")
        return self.state is not State.LOGOUT

    async def _bad_line(self, line: str) -> bool:
        self.bad_in_a_row += 1
        await self.conn.send(line.encode("utf-8", "replace") + b"\r\n")
        if self.bad_in_a_row >= limits.MAX_BAD_COMMANDS:
            await self._bye("Too many invalid commands")
            return False
        return True


async def handle(ctx: ImapContext, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, info: ConnectionInfo) -> None:
    """The listener's connection handler: run a session, then close the writer."""
    try:
        await Session(ctx, reader, writer, info).run()
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
