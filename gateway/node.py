"""The composition root: one node, one process, every listener.

Role: ``gateway serve``. It loads settings, prepares TLS material, opens the store
(running migrations), bootstraps an empty organisation, starts every service, watches
the organisation configuration for changes made by the admin shell or another node,
and shuts down cleanly on SIGTERM/SIGINT. This is the only module that knows which
concrete store, directory and services are in use (docs/architecture.md).

Invariants: a failure to start any service stops the node with a clear message and
no traceback; on shutdown services stop before the store closes, so in-flight
transactions finish or roll back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import sys
from collections.abc import Callable
from typing import Any, TextIO

from auth.certificates import CertificateMapper
from auth.directories.ldap import LdapDirectory
from auth.directories.local import LocalDirectory
from auth.directory import Directory
from auth.hashing import HashRunner
from auth.service import AuthService
from gateway.bootstrap import BootstrapResult, bootstrap_organisation
from gateway.config import Settings
from gateway.health import HttpService, health_app
from gateway.http.auth import https_app
from gateway.maintenance import MaintenanceService
from gateway.relay.service import RelayService
from gateway.services import Service
from gateway.store import Store, open_store
from gateway.tls import ensure_certificate, node_client_auth_context, server_context
from protocols.imap.service import ImapService
from protocols.pop3.service import Pop3Service
from protocols.smtp.auth import load_certificate_der
from protocols.smtp.service import SmtpService

log = logging.getLogger("gateway.node")


class Node:
    """A running gateway node. ``run()`` returns when the node has stopped."""

    def __init__(self, settings: Settings, *, out: TextIO = sys.stdout) -> None:
        self.settings = settings
        self.out = out
        self.store: Store | None = None
        self.auth: AuthService | None = None
        self.tls: ssl.SSLContext | None = None
        self.tls_client_auth: ssl.SSLContext | None = None  # None: client certs off
        self.server_certificate: bytes | None = None
        self.hash_runner: HashRunner | None = None
        self.ldap: LdapDirectory | None = None
        self.services: list[Service] = []
        self.org_version = -1
        self._stop = asyncio.Event()

    # -- life cycle -----------------------------------------------------------------

    async def run(self, *, ready: Callable[[Node], None] | None = None) -> None:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(ensure_certificate, s.tls, s.server_name)
        tls = self.tls = server_context(s.tls)
        self.tls_client_auth = node_client_auth_context(s)
        # DER of the certificate served, for NTLM channel binding (RFC 5929 §4.1)
        self.server_certificate = await asyncio.to_thread(load_certificate_der,
                                                          s.tls.certificate)
        log.info("opening store %s", _redact(s.store_url))
        self.store = await open_store(s.store_url)
        try:
            first = await bootstrap_organisation(self.store, s.bootstrap_domain)
            self.hash_runner = HashRunner()
            await self.hash_runner.warm_up()
            # One auth service per process: every protocol front end authenticates
            # through it, so lockout, cache and audit are shared (docs/authentication.md).
            self.auth = AuthService(await self._open_directory(), self.store.auth_state)
            self.auth.certificates = CertificateMapper(self.store.org)  # client certs
            self.org_version = await self.store.org.version()
            self.services = self._build_services(tls)
            for service in self.services:
                await service.start()
                for line in service.describe():
                    log.info("listening %s", line)
            self._install_signal_handlers()
            self._announce(first)
            if ready is not None:
                ready(self)
            watcher = asyncio.create_task(self._watch_organisation())
            await self._stop.wait()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            log.info("stopping (grace %.0fs)", s.shutdown_grace_seconds)
        finally:
            for service in reversed(self.services):
                try:
                    await service.stop(s.shutdown_grace_seconds)
                except Exception:
                    log.exception("service %s did not stop cleanly", service.name)
            if self.ldap is not None:
                await self.ldap.close()
            if self.hash_runner is not None:
                self.hash_runner.close()
            await self.store.close()
            log.info("stopped")

    async def _open_directory(self) -> Directory:
        """The local directory, behind the LDAP directory when [ldap] is configured."""
        assert self.store is not None and self.hash_runner is not None
        local = LocalDirectory(self.store.org, self.hash_runner)
        if self.settings.ldap is None:
            return local
        self.ldap = await LdapDirectory.open(self.settings.ldap, self.store.org,
                                             fallback=local)
        log.info("LDAP directory: %s", ", ".join(self.settings.ldap.uris))
        return self.ldap

    def request_stop(self) -> None:
        self._stop.set()

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("received %s", sig.name)
        self.request_stop()

    # -- services -------------------------------------------------------------------

    def _build_services(self, tls: Any) -> list[Service]:
        """Every service of the node. Protocol front ends are added here by their issues."""
        s = self.settings
        app = health_app(s.server_name, self._health_probe)
        assert self.store is not None and self.auth is not None
        # The relay starts first and stops last: front ends hand it messages until the end.
        relay = RelayService(self.store, server_name=s.server_name)
        return [
            relay,
            MaintenanceService(self.store),
            HttpService("health", app, s.health_bind),
            HttpService("https", https_app(app, self.auth, self.store.org,
                                           server_name=s.server_name,
                                           certificate_file=s.tls.certificate),
                        s.bindings["https"], tls=self.tls_client_auth or tls),
            SmtpService(store=self.store, auth=self.auth, server_name=s.server_name, tls=tls,
                        trusted_proxies=s.trusted_proxies, bindings=s.bindings,
                        log_dir=s.data_dir / "logs" / "ProtocolLog" / "SmtpReceive",
                        settings_source=None if s.source == "embedded defaults" else s.source,
                        relay=relay.relay, tls_client_auth=self.tls_client_auth,
                        server_certificate=self.server_certificate),
            Pop3Service(org=self.store.org, mail=self.store.mail, auth=self.auth, tls=tls,
                        node_bindings=s.bindings, trusted_proxies=s.trusted_proxies,
                        tls_client_auth=self.tls_client_auth,
                        server_certificate=self.server_certificate),
            ImapService(store=self.store, auth=self.auth, server_name=s.server_name, tls=tls,
                        node_bindings=s.bindings, trusted_proxies=s.trusted_proxies,
                        tls_client_auth=self.tls_client_auth,
                        server_certificate=self.server_certificate),
        ]

    async def _health_probe(self) -> dict[str, Any]:
        assert self.store is not None
        version = await self.store.org.version()
        return {"store": "ok", "org_version": version,
                "listeners": [line for svc in self.services for line in svc.describe()]}

    # -- organisation changes -----------------------------------------------------------

    async def _watch_organisation(self) -> None:
        """Poll the org version; tell every service when it moves (no restart needed)."""
        assert self.store is not None
        while True:
            await asyncio.sleep(self.settings.org_poll_seconds)
            try:
                version = await self.store.org.version()
            except Exception as exc:
                log.warning("cannot read the organisation version: %s", exc)
                continue
            if version == self.org_version:
                continue
            log.info("organisation configuration changed (version %d -> %d)",
                     self.org_version, version)
            self.org_version = version
            for service in self.services:
                try:
                    await service.on_org_change(version)
                except Exception:
                    log.exception("service %s failed to apply organisation version %d",
                                  service.name, version)

    # -- operator output ----------------------------------------------------------------

    def _announce(self, first: BootstrapResult | None) -> None:
        s = self.settings
        lines = [f"gateway {s.server_name} is up (settings: {s.source}, store: "
                 f"{_redact(s.store_url)})"]
        lines += [f"  {line}" for svc in self.services for line in svc.describe()]
        health = s.health_bind[0] if s.health_bind else None
        if health is not None:
            lines.append(f"  health check: curl http://{health}/healthz")
        lines.append("  admin shell:  gateway shell   (or: gateway exec 'Get-Mailbox')")
        if first is not None:
            lines += [
                "",
                f"  First start: created accepted domain {first.domain} and mailbox "
                f"{first.admin_address}",
                f"  Its password, shown this once: {first.admin_password}",
                "  Change it with: gateway exec 'Set-Mailbox admin -Password \"...\"'",
            ]
        print("\n".join(lines), file=self.out, flush=True)


def _redact(url: str) -> str:
    """Hide a password in a store URL (postgresql://user:secret@host/db)."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in creds:
        return url
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
