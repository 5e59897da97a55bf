"""``gateway shell``: the interactive prompt loop over ``run_line``.

On a TTY: a ``[PS] <server>>`` prompt, readline line editing, tab completion of cmdlet
and parameter names, and in-memory history (never written to disk; lines that carry
``-Password`` are dropped from the history),
and High-impact cmdlets (Remove-*) ask for confirmation unless ``-Confirm:$false``.
On a pipe or file: no prompt, no questions; every line runs as in ``gateway exec``.

``exit`` or ``quit`` (or end of input) leaves the loop. An error is printed and the
loop goes on; the exit status is 0, or 1 when reading a script from a non-TTY and any
line failed (so ``gateway shell < script`` can be checked), or 130 after Ctrl-C at the
prompt. Input is read in a daemon thread so the event loop (and the store's
connections) keeps running and an abandoned ``input()`` never blocks the exit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import sys
import threading
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import TextIO

from gateway.admin.context import AdminContext
from gateway.admin.errors import CmdletError
from gateway.admin.registry import Registry
from gateway.admin.runner import default_registry, run_line

EXIT_WORDS = frozenset({"exit", "quit"})
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


async def _read_in_daemon_thread(reader: Callable[[str], str], prompt: str) -> str:
    """Call the blocking ``reader`` in a daemon thread.

    Not ``asyncio.to_thread``: a thread of the default executor blocked in ``input()``
    would keep ``asyncio.run`` from returning after Ctrl-C until Enter is pressed. A
    daemon thread is simply abandoned when the shell leaves.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def settle(value: str | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value or "")

    def deliver(value: str | None, error: BaseException | None) -> None:
        try:
            loop.call_soon_threadsafe(settle, value, error)
        except RuntimeError:  # the loop is closed: the shell has already left
            pass

    def run() -> None:
        try:
            value = reader(prompt)
        except BaseException as exc:  # EOFError, KeyboardInterrupt: re-raised by the awaiter
            deliver(None, exc)
            return
        deliver(value, None)

    threading.Thread(target=run, name="admin-shell-input", daemon=True).start()
    return await future


def completions(registry: Registry, line: str, text: str) -> list[str]:
    """Tab completion: cmdlet names at a command's start, else its parameter names."""
    segment = re.split(r"[|;(]", line)[-1]
    words = segment.split()
    at_command = not words or (len(words) == 1 and not segment.endswith(" "))
    if at_command:
        names = [s.name for s in registry.all()]
        return sorted(n for n in names if n.lower().startswith(text.lower()))
    if not text.startswith("-") or words[0] not in registry:
        return []
    spec = registry.get(words[0])
    prefix = text[1:].lower()
    return [f"-{p.name}" for p in spec.params if p.name.lower().startswith(prefix)]


def _setup_readline(registry: Registry) -> ModuleType | None:
    try:
        import readline
    except ImportError:  # pragma: no cover - platform without readline
        return None
    matches: list[str] = []

    def complete(text: str, state: int) -> str | None:  # pragma: no cover - needs a TTY
        if state == 0:
            matches[:] = completions(registry, readline.get_line_buffer(), text)
        return matches[state] if state < len(matches) else None

    readline.set_completer_delims(" \t\n|;,(")
    readline.set_completer(complete)
    readline.parse_and_bind("tab: complete")
    return readline


def _forget_secret(readline: ModuleType | None, line: str) -> None:
    """Keep lines with a password out of the history (they are never shown again)."""
    if readline is None or "-pass" not in line.lower():
        return
    length = readline.get_current_history_length()
    if length:
        readline.remove_history_item(length - 1)


async def interactive(
    ctx: AdminContext,
    *,
    read_line: Callable[[str], str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    tty: bool | None = None,
) -> int:
    """Run the prompt loop until ``exit``/``quit``/end of input; return the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    is_tty = sys.stdin.isatty() if tty is None else tty
    reader = read_line or input
    registry = ctx.registry or default_registry()
    readline = _setup_readline(registry) if (is_tty and read_line is None) else None
    prompt = f"[PS] {ctx.server_name}> " if is_tty else ""

    async def read(text: str) -> str:
        return await _read_in_daemon_thread(reader, text)

    if is_tty:
        ctx = dataclasses.replace(ctx, confirm=_confirmer(read, out))
        print("Gateway admin shell. Get-Command lists the cmdlets, Get-Help <cmdlet> explains "
              "one; exit leaves.", file=out)
    failed = False
    while True:
        try:
            line = await read(prompt)
        except EOFError:
            if is_tty:
                print(file=out)
            break
        except KeyboardInterrupt:
            print(file=out)
            continue
        except asyncio.CancelledError:
            # Ctrl-C under asyncio.run cancels the main task: leave like Ctrl-D.
            print(file=out)
            return EXIT_INTERRUPTED
        _forget_secret(readline, line)
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.lower() in EXIT_WORDS:
            break
        try:
            output = await run_line(ctx, text)
        except CmdletError as exc:
            failed = True
            print(str(exc), file=err)
            continue
        if output:
            print(output, file=out)
        out.flush()
    return 1 if failed and not is_tty else 0


def _confirmer(
    read: Callable[[str], Awaitable[str]], out: TextIO
) -> Callable[[str], Awaitable[bool]]:
    async def confirm(question: str) -> bool:
        print(f"\nConfirm\n{question}", file=out)
        try:
            answer = await read('[Y] Yes  [N] No  (default is "N"): ')
        except (EOFError, KeyboardInterrupt):
            return False
        return answer.strip().lower() in ("y", "yes")

    return confirm
