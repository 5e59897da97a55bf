"""LDAP connections for the directory: a pool, failover over several URIs, TLS.

Role: run python-ldap's blocking calls off the event loop, in this pool's own threads
(never the default executor the store uses), on connections that are reused:

- *search* connections are bound as the service account (or anonymous when no
  bind DN is configured) and only ever search;
- *bind* connections verify user passwords with a simple bind (RFC 4513 §5.1.3); a
  bind replaces the connection's identity, so they never search.

Failover: URIs are tried in the configured order; one that fails to connect is
skipped for ``retry_after`` seconds unless every URI is down (then all are tried
again). A pooled connection that breaks is discarded and the operation is retried
once on a fresh one.

Invariants: at most ``pool_size`` connections of each kind and ``pool_size`` LDAP
calls in flight; at most ``max_pending`` callers wait, further ones get
``AuthUnavailable`` at once. TLS (LDAPS or StartTLS) always demands a valid server
certificate whose name matches the URI's host. The directory is never reached in
clear unless the operator chose ``tls = "none"`` (logged at start). No password is
ever logged. When no URI can be reached the caller gets ``AuthUnavailable`` (fail
closed) and the log says which URIs failed and why.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

import ldap

from auth.errors import AuthUnavailable

log = logging.getLogger("auth.directory.ldap")

T = TypeVar("T")
Kind = Literal["search", "bind"]

#: Errors that mean "this server or connection is unusable", not "no such thing".
_CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    ldap.SERVER_DOWN, ldap.CONNECT_ERROR, ldap.TIMEOUT, ldap.UNAVAILABLE, ldap.BUSY,
    ldap.TIMELIMIT_EXCEEDED,
)


class LdapConnectError(Exception):
    """No URI could be reached (internal; surfaced as ``AuthUnavailable``)."""


class LdapPool:
    """Pooled python-ldap connections with failover, driven from asyncio."""

    def __init__(self, *, uris: tuple[str, ...], tls: str, ca_file: str | None,
                 bind_dn: str | None, bind_password: str, connect_timeout: float,
                 operation_timeout: float, pool_size: int, max_pending: int,
                 retry_after: float) -> None:
        self._uris = uris
        self._tls = tls
        self._ca_file = ca_file
        self._bind_dn = bind_dn
        self._bind_password = bind_password
        self._connect_timeout = connect_timeout
        self._operation_timeout = operation_timeout
        self._pool_size = pool_size
        self._max_pending = max_pending
        self._retry_after = retry_after
        self._executor = ThreadPoolExecutor(max_workers=pool_size,
                                            thread_name_prefix="ldap")
        self._lock = threading.Lock()
        self._idle: dict[Kind, list[Any]] = {"search": [], "bind": []}
        self._down_until: dict[str, float] = {}
        self._pending = 0
        self._closed = False

    # -- asyncio side ---------------------------------------------------------------

    async def run(self, kind: Kind, operation: Callable[[Any], T]) -> T:
        """Run ``operation(connection)`` on a pooled connection in an LDAP thread."""
        if self._closed:
            raise AuthUnavailable("the LDAP directory is shut down")
        if self._pending >= self._max_pending:
            log.warning("LDAP pool saturated: %d calls waiting", self._pending)
            raise AuthUnavailable("the directory is busy")
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self._call, kind, operation)
        except LdapConnectError as exc:
            log.error("LDAP directory unreachable, refusing directory logins: %s", exc)
            raise AuthUnavailable("the directory cannot be reached") from None
        finally:
            self._pending -= 1

    async def close(self) -> None:
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown)

    # -- thread side ----------------------------------------------------------------

    def _shutdown(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            conns = self._idle["search"] + self._idle["bind"]
            self._idle = {"search": [], "bind": []}
        for conn in conns:
            self._unbind(conn)

    def _call(self, kind: Kind, operation: Callable[[Any], T]) -> T:
        for attempt in (1, 2):
            conn, fresh = self._acquire(kind)
            try:
                result = operation(conn)
            except _CONNECTION_ERRORS as exc:
                self._unbind(conn)
                if fresh or attempt == 2:
                    raise LdapConnectError(f"operation failed: {_describe(exc)}") from None
                continue  # a stale pooled connection: retry once on a fresh one
            except BaseException:
                self._unbind(conn)
                raise
            self._release(kind, conn)
            return result
        raise AssertionError("unreachable")

    def _acquire(self, kind: Kind) -> tuple[Any, bool]:
        with self._lock:
            if self._idle[kind]:
                return self._idle[kind].pop(), False
        return self._connect(kind), True

    def _release(self, kind: Kind, conn: Any) -> None:
        with self._lock:
            if not self._closed and len(self._idle[kind]) < self._pool_size:
                self._idle[kind].append(conn)
                return
        self._unbind(conn)

    def _ordered_uris(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            up = [u for u in self._uris if self._down_until.get(u, 0.0) <= now]
            down = [u for u in self._uris if u not in up]
        return up + down  # all down: try them all anyway, in order

    def _connect(self, kind: Kind) -> Any:
        failures: list[str] = []
        for uri in self._ordered_uris():
            try:
                conn = self._open(uri)
            except _CONNECTION_ERRORS as exc:
                failures.append(f"{uri}: {_describe(exc)}")
                with self._lock:
                    self._down_until[uri] = time.monotonic() + self._retry_after
                log.warning("LDAP server %s unusable (%s); failing over", uri,
                            _describe(exc))
                continue
            except ldap.LDAPError as exc:  # TLS refused, certificate invalid, ...
                failures.append(f"{uri}: {_describe(exc)}")
                with self._lock:
                    self._down_until[uri] = time.monotonic() + self._retry_after
                log.warning("LDAP server %s refused the connection (%s)", uri,
                            _describe(exc))
                continue
            with self._lock:
                self._down_until.pop(uri, None)
            if kind == "search":
                self._service_bind(conn, uri)
            return conn
        raise LdapConnectError("; ".join(failures) or "no LDAP URI configured")

    def _open(self, uri: str) -> Any:
        conn = ldap.initialize(uri)
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, ldap.VERSION3)
        conn.set_option(ldap.OPT_REFERRALS, 0)  # never chase referrals with credentials
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, self._connect_timeout)
        conn.set_option(ldap.OPT_TIMEOUT, self._operation_timeout)
        conn.timeout = self._operation_timeout  # python-ldap's *_s calls wait this long
        if self._tls != "none":
            # RFC 4513 §3.1.3: verify the server's certificate and its name.
            conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
            if self._ca_file:
                conn.set_option(ldap.OPT_X_TLS_CACERTFILE, self._ca_file)
            conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)  # apply the TLS options above
        try:
            if self._tls == "starttls":
                conn.start_tls_s()  # RFC 4511 §4.14, RFC 4513 §3
            else:
                conn.whoami_s()  # force the connection (and LDAPS handshake) now
        except BaseException:
            self._unbind(conn)
            raise
        return conn

    def _service_bind(self, conn: Any, uri: str) -> None:
        if not self._bind_dn:
            return  # anonymous search
        try:
            conn.simple_bind_s(self._bind_dn, self._bind_password)
        except ldap.INVALID_CREDENTIALS:
            self._unbind(conn)
            raise LdapConnectError(f"{uri}: the service bind as {self._bind_dn!r} was "
                                   "refused (check bind_dn and the password file)") from None
        except BaseException:
            self._unbind(conn)
            raise

    @staticmethod
    def _unbind(conn: Any) -> None:
        try:
            conn.unbind_s()
        except Exception as exc:  # closing a broken connection: nothing more to do
            log.debug("LDAP unbind failed: %s", type(exc).__name__)


def _describe(exc: BaseException) -> str:
    """A log-safe description of a python-ldap error (its desc and info, no data)."""
    if exc.args and isinstance(exc.args[0], dict):
        info = exc.args[0]
        desc = str(info.get("desc", type(exc).__name__))
        extra = info.get("info")
        return f"{desc} ({extra})" if extra else desc
    return type(exc).__name__
