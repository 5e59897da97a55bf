"""The interactive prompt loop, driven with scripted input."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable

import pytest

from gateway.admin.shell import _forget_secret, interactive


def script(*lines: str) -> tuple[Callable[[str], str], list[str]]:
    """A read_line that returns ``lines`` then raises EOFError; records the prompts."""
    pending = list(lines)
    prompts: list[str] = []

    def read(prompt: str) -> str:
        prompts.append(prompt)
        if not pending:
            raise EOFError
        return pending.pop(0)

    return read, prompts


async def test_non_tty_runs_lines_and_reports_failure(ctx, store):
    read, prompts = script(
        "New-AcceptedDomain example -DomainName example.test",
        "",
        "# a comment",
        "Get-Mailbx",
        "New-Mailbox alice -Password 'S3cret!pass'",
        "Get-Mailbox alice | Format-List Name",
    )
    out, err = io.StringIO(), io.StringIO()
    status = await interactive(ctx, read_line=read, out=out, err=err, tty=False)
    assert status == 1  # one line failed: a script's caller must know
    assert "Did you mean 'Get-Mailbox'?" in err.getvalue()
    assert out.getvalue().endswith("Name : alice\n")
    assert "S3cret!pass" not in out.getvalue() + err.getvalue()
    assert set(prompts) == {""}
    assert len(store.org.mailboxes) == 1


async def test_non_tty_success_is_zero(ctx):
    read, _ = script("Get-Mailbox")
    assert await interactive(ctx, read_line=read, out=io.StringIO(), err=io.StringIO(),
                             tty=False) == 0


async def test_exit_and_quit_stop_the_loop(ctx, store):
    for word in ("exit", "QUIT"):
        read, _ = script(word, "New-AcceptedDomain x -DomainName x.test")
        await interactive(ctx, read_line=read, out=io.StringIO(), err=io.StringIO(), tty=False)
    assert not store.org.domains


async def test_tty_prompt_banner_and_confirmation(ctx, store):
    read, prompts = script(
        "New-AcceptedDomain example -DomainName example.test",
        "New-Mailbox alice",
        "Remove-Mailbox alice",
        "n",
        "Remove-Mailbox alice",
        "y",
        "Remove-Mailbox nobody",
        "exit",
    )
    out, err = io.StringIO(), io.StringIO()
    status = await interactive(ctx, read_line=read, out=out, err=err, tty=True)
    assert status == 0  # interactive errors were shown to the operator
    assert prompts[0] == "[PS] mail1.example.test> "
    assert prompts[3] == '[Y] Yes  [N] No  (default is "N"): '
    assert "Get-Command lists the cmdlets" in out.getvalue()
    assert 'Are you sure you want to perform this action?\nRemove mailbox "alice".' in \
        out.getvalue()
    assert not store.org.mailboxes
    assert "couldn't be found" in err.getvalue()
    assert ctx.confirm is None  # the caller's context is not changed


async def test_tty_end_of_input_leaves(ctx):
    read, _ = script()
    out = io.StringIO()
    assert await interactive(ctx, read_line=read, out=out, err=io.StringIO(), tty=True) == 0
    assert out.getvalue().endswith("\n")


async def test_reader_errors_other_than_eof_propagate(ctx):
    def broken(prompt: str) -> str:
        raise OSError("terminal gone")

    with pytest.raises(OSError, match="terminal gone"):
        await interactive(ctx, read_line=broken, out=io.StringIO(), err=io.StringIO(),
                          tty=False)


async def test_cancelled_prompt_leaves_with_130(ctx):
    started = threading.Event()
    release = threading.Event()

    def blocking(prompt: str) -> str:
        started.set()
        release.wait(5)
        return "exit"

    task = asyncio.ensure_future(interactive(ctx, read_line=blocking, out=io.StringIO(),
                                             err=io.StringIO(), tty=False))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    assert await task == 130
    release.set()


def test_password_lines_are_dropped_from_history():
    class FakeReadline:
        def __init__(self) -> None:
            self.items = ["Get-Mailbox", "Set-Mailbox a -Password 'x'"]

        def get_current_history_length(self) -> int:
            return len(self.items)

        def remove_history_item(self, index: int) -> None:
            del self.items[index]

    fake = FakeReadline()
    _forget_secret(fake, "Get-Mailbox")  # type: ignore[arg-type]
    assert len(fake.items) == 2
    _forget_secret(fake, "Set-Mailbox a -PASSWORD 'x'")  # type: ignore[arg-type]
    assert fake.items == ["Get-Mailbox"]


def test_tab_completion_of_cmdlets_and_parameters():
    from gateway.admin.runner import default_registry
    from gateway.admin.shell import completions

    registry = default_registry()
    assert completions(registry, "Get-CAS", "Get-CAS") == ["Get-CASMailbox"]
    assert "Set-Mailbox" in completions(registry, "set-m", "set-m")
    assert completions(registry, "Set-CASMailbox alice -Im", "-Im") == ["-ImapEnabled"]
    assert completions(registry, "Get-Mailbox alice | Set-CASMailbox -p", "-p") == [
        "-PopEnabled"]
    assert completions(registry, "Get-Mailbox alice | Get-CAS", "Get-CAS") == [
        "Get-CASMailbox"]
    assert completions(registry, "Nope-Thing -", "-") == []
    assert completions(registry, "Get-Mailbox al", "al") == []
