"""Command line: ``gateway serve | exec | shell | check-config | version``.

Role: parse the command line, load node settings (``--config`` or GATEWAY_CONFIG, else
the embedded defaults) and hand over to the node or the admin shell. Invariant: an
operator error (bad settings, unreachable store, bad cmdlet) prints a clear message
and exits non-zero, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from gateway import __version__, eventloop
from gateway.config import ENV_CONFIG, Settings, load_settings
from gateway.errors import ConfigError, GatewayError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2

DESCRIPTION = """\
A multi-protocol mail client access gateway in the image of Exchange's Client Access
role: SMTP, IMAP4, POP3, web mail and ActiveSync in front of one mailbox store.

Node settings come from a TOML file (--config FILE or the GATEWAY_CONFIG environment
variable); without one, the embedded defaults apply: data in ./var (SQLite store,
self-signed certificate) and listeners on loopback with unprivileged ports.
Organisation configuration (domains, mailboxes, connectors) lives in the store and is
changed with Exchange-style cmdlets through `gateway exec` or `gateway shell`.
"""

EPILOG = "\n".join([
    "examples:",
    "  gateway serve",
    "  gateway --config /etc/gateway/gateway.toml serve",
    "  gateway exec 'New-AcceptedDomain -Name example -DomainName example.test'",
    "  gateway exec 'New-Mailbox -Name alice -PrimarySmtpAddress alice@example.test"
    " -Password \"S3cret!pass\"'",
    "  gateway exec 'Get-Mailbox alice' --format json",
    "  gateway shell",
    "  gateway check-config",
    "",
    "environment of `gateway serve`:",
    "  GATEWAY_CONFIG=FILE        settings file (as --config)",
    "  GATEWAY_SMTP_WORKERS=N     SMTP processes sharing the ports (default 1;"
    " auto: one per CPU)",
    "  GATEWAY_EVENT_LOOP=asyncio Python's own event loop instead of uvloop",
    "",
    "documentation: docs/configuration.md (settings), docs/cmdlets.md (cmdlets),",
    "  docs/operations.md (running a node)",
])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="FILE",
                        help=f"node settings (TOML); default: ${ENV_CONFIG} or embedded "
                             "defaults")
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", help="run every listener of this node until SIGTERM",
                   description="Run every listener of this node. Stops cleanly on SIGTERM "
                               "or Ctrl-C; organisation changes apply without a restart.")
    p_exec = sub.add_parser("exec", help="run one cmdlet line and print its output",
                            description="Run one cmdlet line, e.g. "
                                        "'Get-Mailbox alice | Format-List'.")
    p_exec.add_argument("line", help="the cmdlet line (quote it for your shell)")
    p_exec.add_argument("--format", choices=("auto", "list", "table", "json"),
                        default="auto", help="output format (default: as the cmdlet "
                                             "chooses)")
    sub.add_parser("shell", help="interactive cmdlet shell",
                   description="An interactive prompt for cmdlets; 'exit' leaves it.")
    sub.add_parser("check-config", help="validate the node settings and print them",
                   description="Validate the node settings, report every problem at once, "
                               "and print the effective values.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print("gateway: invalid settings:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "check-config":
            return _check_config(settings)
        if args.command == "serve":
            return _serve(settings)
        if args.command == "exec":
            return asyncio.run(_exec(settings, args.line, args.format))
        if args.command == "shell":
            return asyncio.run(_shell(settings))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"gateway: {problem}", file=sys.stderr)
        return EXIT_ERROR
    except GatewayError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ERROR
    parser.error(f"unknown command {args.command!r}")
    return EXIT_USAGE  # pragma: no cover - parser.error exits


def _check_config(settings: Settings) -> int:
    print(f"settings from {settings.source}: OK")
    print(f"  server_name      {settings.server_name}")
    print(f"  data_dir         {settings.data_dir}")
    print(f"  store_url        {settings.store_url}")
    print(f"  bootstrap_domain {settings.bootstrap_domain}")
    print(f"  tls              {settings.tls.certificate}, {settings.tls.private_key}")
    print(f"  health_bind      {', '.join(map(str, settings.health_bind))}")
    for name, endpoints in settings.bindings.items():
        print(f"  bindings.{name:<12} {', '.join(map(str, endpoints)) or '(none)'}")
    return EXIT_OK


def _serve(settings: Settings) -> int:
    from gateway.logsetup import configure_logging
    from gateway.node import Node

    configure_logging(settings.logging)
    eventloop.run(Node(settings).run())
    return EXIT_OK


async def _open_admin(settings: Settings):  # type: ignore[no-untyped-def]
    from gateway.admin import AdminContext
    from gateway.store import open_store

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = await open_store(settings.store_url)
    return store, AdminContext(store=store, server_name=settings.server_name)


async def _exec(settings: Settings, line: str, output_format: str) -> int:
    from gateway.admin import CmdletError, run_line

    logging.basicConfig(level=logging.WARNING, format="gateway: %(message)s")
    store, ctx = await _open_admin(settings)
    try:
        kwargs = {} if output_format == "auto" else {"output_format": output_format}
        output = await run_line(ctx, line, **kwargs)
    except CmdletError as exc:
        print(f"{exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        await store.close()
    if output:
        print(output)
    return EXIT_OK


async def _shell(settings: Settings) -> int:
    from gateway.admin.shell import interactive

    logging.basicConfig(level=logging.WARNING, format="gateway: %(message)s")
    store, ctx = await _open_admin(settings)
    try:
        return await interactive(ctx)
    finally:
        await store.close()
