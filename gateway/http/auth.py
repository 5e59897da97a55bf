"""HTTP authentication for the HTTPS listener: Basic, NTLM, Negotiate, client certificates.

Role: the one authentication layer web mail and ActiveSync mount (docs/auth/). Per
request it reads the organisation's policy (``auth.policy.load_auth_policy``, cached for
``POLICY_TTL`` seconds so a cmdlet change applies on every node within seconds), asks
``auth.policy.mechanism_allowed`` for the request's method, and hands credentials to the
shared ``AuthService`` (lockout, credential cache, audit):

- **Basic** (RFC 7617): ``auth.mechanisms.basic``; verified passwords are served from
  the AuthService's credential cache, so per-request Basic (ActiveSync) is cheap;
- **NTLM** (MS-NTHT) and **Negotiate** carrying NTLM (RFC 4559, RFC 4178):
  ``auth.ntlm.http.HttpNtlmState``, one per TCP connection *and* protocol, kept in the
  connection's own extension dict that ``gateway.http.tls`` builds once per connection:
  the handshake state can never be seen by another connection, and dies with it;
- **client certificates** (``ClientCertAuth Ignore|Accepted|Required`` for ActiveSync):
  ``gateway.http.client_cert.certificate_principal``.

Invariants: on plain HTTP nothing is offered or accepted (403, no ``WWW-Authenticate``):
neither a password nor an NTLM exchange travels without TLS; every refusal is a 401
with the allowed challenges (403 for a missing required certificate), a temporary
failure a 503 with ``Retry-After``; the reason is logged, never sent; nothing raises
out of ``authenticate`` except programming errors.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from auth.certificates import CertificateAuthenticator
from auth.errors import AuthenticationFailed, AuthUnavailable, MechanismError
from auth.mechanisms.basic import basic_challenge, parse_basic_authorization
from auth.ntlm.http import HttpChallenge, HttpNtlmState
from auth.ntlm.verify import channel_bindings_hash, tls_server_end_point
from auth.policy import (
    AuthPolicySettings,
    ConnectionFacts,
    SettingsSource,
    load_auth_policy,
    mechanism_allowed,
)
from auth.principal import Principal
from auth.service import AuthService
from gateway.http.client_cert import certificate_principal
from gateway.http.tls import GATEWAY_TLS, client_certificate_der

log = logging.getLogger("gateway.http.auth")

HttpProtocol = Literal["owa", "activesync"]
#: Seconds a loaded policy is used before the store is read again.
POLICY_TTL = 10.0
#: Retry-After (seconds) sent with a 503.
RETRY_AFTER_SECONDS = 5
#: Key of the per-connection state inside the connection's ``gateway.tls`` extension.
_STATE_KEY = "http_auth_ntlm"
#: Challenges in the order offered (Windows clients pick the first they support).
_CHALLENGES = ("Negotiate", "NTLM", "Basic")


class PolicyCache:
    """The organisation's ``AuthPolicySettings``, re-read at most every ``ttl`` seconds.

    A store error keeps the last good policy (logged); with none yet it is
    ``AuthUnavailable`` (fail closed, 503)."""

    def __init__(self, org: SettingsSource, *, ttl: float = POLICY_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._org = org
        self._ttl = ttl
        self._clock = clock
        self._policy: AuthPolicySettings | None = None
        self._loaded = 0.0

    async def get(self) -> AuthPolicySettings:
        now = self._clock()
        if self._policy is not None and now - self._loaded < self._ttl:
            return self._policy
        try:
            self._policy = await load_auth_policy(self._org)
            self._loaded = now
        except Exception as exc:  # store down: keep serving the last known policy
            if self._policy is None:
                raise AuthUnavailable("authentication policy unavailable") from exc
            log.warning("cannot reload the authentication policy, keeping the last: %s", exc)
        return self._policy

    def invalidate(self) -> None:
        self._policy = None


@dataclass
class HttpAuthResult:
    """Either ``principal`` (authenticated; add ``headers`` to the response) or
    ``response`` (send it instead of serving the request)."""

    principal: Principal | None = None
    mechanism: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    response: Response | None = None


def channel_binding_for_certificate(path: Path) -> bytes | None:
    """``MsvAvChannelBindings`` value for the node's certificate file (RFC 5929 §4.1
    tls-server-end-point), or None when it cannot be read (then a client that sends a
    binding is refused, which is the safe side)."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        log.warning("no NTLM channel binding: cannot read %s: %s", path, exc)
        return None
    return channel_bindings_hash(tls_server_end_point(cert.public_bytes(Encoding.DER)))


def _is_tls(scope: Scope) -> bool:
    return scope.get("scheme") == "https" and isinstance(
        (scope.get("extensions") or {}).get(GATEWAY_TLS), dict)


def _client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


def _qualify(login: str, policy: AuthPolicySettings) -> str:
    """Set-OwaVirtualDirectory -DefaultDomain: a bare user name gets the domain."""
    domain = policy.owa_default_domain
    if domain and "@" not in login and "\\" not in login:
        return f"{domain}\\{login}"
    return login


class HttpAuthenticator:
    """Authenticates requests of one virtual directory (``protocol`` owa or activesync)."""

    def __init__(self, auth: AuthService, policy: PolicyCache, *, protocol: HttpProtocol,
                 realm: str, certificates: CertificateAuthenticator | None = None,
                 channel_binding: bytes | None = None) -> None:
        if protocol not in ("owa", "activesync"):
            raise ValueError(f"unknown HTTP protocol {protocol!r}")
        self._auth = auth
        self._policy = policy
        self.protocol = protocol
        self._realm = realm
        self._challenge_basic = basic_challenge(realm)
        self._certificates = certificates
        self._channel_binding = channel_binding

    async def authenticate(self, scope: Scope) -> HttpAuthResult:
        """The request's principal, or the response that refuses it."""
        try:
            return await self._authenticate(scope)
        except AuthUnavailable as exc:
            log.warning("http auth protocol=%s unavailable: %s", self.protocol, exc)
            return HttpAuthResult(response=JSONResponse(
                {"error": "service unavailable"}, status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)}))

    async def _authenticate(self, scope: Scope) -> HttpAuthResult:
        tls = _is_tls(scope)
        if not tls:  # never offer or accept credentials on plain HTTP
            return self._forbidden("HTTPS required")
        policy = await self._policy.get()
        has_cert = client_certificate_der(scope) is not None
        facts = ConnectionFacts(tls=True, client_certificate=has_cert)
        if self.protocol == "activesync" and policy.activesync_client_cert_auth != "Ignore":
            result = await self._certificate(scope, policy, facts)
            if result is not None:
                return result
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        authorization = headers.get("authorization")
        if authorization is None:
            return self._unauthorized(policy, facts, "no credentials")
        scheme = authorization.strip().partition(" ")[0].lower()
        if scheme == "basic":
            return await self._basic(scope, authorization, policy, facts)
        if scheme in ("ntlm", "negotiate"):
            return await self._ntlm(scope, authorization, policy, facts,
                                    "NTLM" if scheme == "ntlm" else "Negotiate")
        return self._unauthorized(policy, facts, "unsupported authorization scheme")

    async def _certificate(self, scope: Scope, policy: AuthPolicySettings,
                           facts: ConnectionFacts) -> HttpAuthResult | None:
        mode = policy.activesync_client_cert_auth
        if self._certificates is None:
            if mode == "Required":
                log.warning("ClientCertAuth Required but client certificates are not "
                            "configured on this node")
                return self._forbidden("client certificate required")
            return None
        try:
            principal = await certificate_principal(scope, self._certificates, mode=mode,
                                                    protocol=self.protocol)
        except AuthenticationFailed:
            return self._forbidden("client certificate required")
        if principal is not None:
            return HttpAuthResult(principal=principal, mechanism="Certificate")
        return None

    async def _basic(self, scope: Scope, authorization: str, policy: AuthPolicySettings,
                     facts: ConnectionFacts) -> HttpAuthResult:
        decision = mechanism_allowed(self.protocol, "Basic", connection=facts,
                                     settings=policy)
        if not decision:
            return self._unauthorized(policy, facts, decision.reason)
        try:
            credential = parse_basic_authorization(authorization)
        except MechanismError as exc:
            return self._unauthorized(policy, facts, f"malformed Basic: {exc}")
        if self.protocol == "owa":
            credential = type(credential)(login=_qualify(credential.login, policy),
                                          password=credential.password)
        try:
            principal = await self._auth.authenticate(
                credential, protocol=self.protocol, mechanism="Basic",
                source_ip=_client_ip(scope))
        except AuthenticationFailed:
            return self._unauthorized(policy, facts, "Basic login refused")
        return HttpAuthResult(principal=principal, mechanism="Basic")

    async def _ntlm(self, scope: Scope, authorization: str, policy: AuthPolicySettings,
                    facts: ConnectionFacts, scheme: str) -> HttpAuthResult:
        decision = mechanism_allowed(self.protocol, scheme, connection=facts,
                                     settings=policy)
        if not decision:
            return self._unauthorized(policy, facts, decision.reason)
        state = self._state(scope)
        try:
            step = state.feed(authorization, connection_id=state.connection_id)
        except MechanismError as exc:
            return self._unauthorized(policy, facts, f"{scheme}: {exc}")
        if isinstance(step, HttpChallenge):
            # MS-NTHT §3.2.5.1.1: the CHALLENGE goes back on the same connection.
            return HttpAuthResult(response=Response(
                status_code=401, headers={"WWW-Authenticate": step.www_authenticate}))
        try:
            principal = await self._auth.authenticate(
                step.credential, protocol=self.protocol, mechanism=step.scheme,
                source_ip=_client_ip(scope))
            final = state.final_header(step)
        except (AuthenticationFailed, MechanismError):
            return self._unauthorized(policy, facts, f"{scheme} login refused")
        return HttpAuthResult(principal=principal, mechanism=step.scheme,
                              headers={"WWW-Authenticate": final} if final else {})

    def _state(self, scope: Scope) -> HttpNtlmState:
        """This connection's NTLM state for this protocol (created on first use)."""
        ext: MutableMapping[str, Any] = scope["extensions"][GATEWAY_TLS]
        states: dict[str, HttpNtlmState] = ext.setdefault(_STATE_KEY, {})
        state = states.get(self.protocol)
        if state is None:
            state = HttpNtlmState(connection_id=secrets.token_hex(8), tls=True,
                                  channel_binding=self._channel_binding)
            states[self.protocol] = state
        return state

    def challenges(self, policy: AuthPolicySettings, facts: ConnectionFacts) -> list[str]:
        """The ``WWW-Authenticate`` values allowed now, in order."""
        values = []
        for scheme in _CHALLENGES:
            if mechanism_allowed(self.protocol, scheme, connection=facts, settings=policy):
                values.append(self._challenge_basic if scheme == "Basic" else scheme)
        return values

    def _unauthorized(self, policy: AuthPolicySettings, facts: ConnectionFacts,
                      reason: str) -> HttpAuthResult:
        log.info("http auth protocol=%s refused: %s", self.protocol, reason)
        response = JSONResponse({"error": "authentication required"}, status_code=401)
        for value in self.challenges(policy, facts):
            response.headers.append("WWW-Authenticate", value)
        return HttpAuthResult(response=response)

    def _forbidden(self, reason: str) -> HttpAuthResult:
        log.info("http auth protocol=%s forbidden: %s", self.protocol, reason)
        return HttpAuthResult(response=JSONResponse({"error": reason}, status_code=403))


class RequireAuthentication:
    """ASGI wrapper: serve ``app`` only to authenticated requests.

    The principal is put in ``scope["state"]["principal"]`` (Starlette:
    ``request.state.principal``) and the mechanism in ``...["auth_mechanism"]``; the
    final ``WWW-Authenticate`` of a SPNEGO login is added to the response."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]],
                 authenticator: HttpAuthenticator) -> None:
        self._app = app
        self._authn = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # fail closed: no unauthenticated upgrade
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        result = await self._authn.authenticate(scope)
        if result.response is not None:
            await result.response(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["principal"] = result.principal
        state["auth_mechanism"] = result.mechanism
        extra = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                 for k, v in result.headers.items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and extra:
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self._app(scope, receive, send_with_headers)


async def _whoami(request: Request) -> JSONResponse:
    principal: Principal = request.state.principal
    return JSONResponse({"name": principal.name,
                         "primary_smtp_address": principal.primary_smtp_address,
                         "login_name": principal.login_name,
                         "mechanism": request.state.auth_mechanism})


def auth_probe_routes(owa: HttpAuthenticator, activesync: HttpAuthenticator) -> list[Route]:
    """``GET /auth/whoami`` (web mail policy) and ``GET /auth/activesync/whoami``
    (ActiveSync policy): the authenticated principal as JSON (docs/auth/README.md)."""
    return [Route("/auth/whoami", RequireAuthentication(_whoami_app, owa),
                  methods=["GET"]),
            Route("/auth/activesync/whoami", RequireAuthentication(_whoami_app, activesync),
                  methods=["GET"])]


async def _whoami_app(scope: Scope, receive: Receive, send: Send) -> None:
    await (await _whoami(Request(scope, receive)))(scope, receive, send)


def node_authenticators(auth: AuthService, org: SettingsSource, *, server_name: str,
                        certificate_file: Path | None
                        ) -> tuple[HttpAuthenticator, HttpAuthenticator]:
    """The web mail and ActiveSync authenticators of a node (composition root)."""
    policy = PolicyCache(org)
    binding = channel_binding_for_certificate(certificate_file) if certificate_file \
        else None
    certificates = CertificateAuthenticator(auth) if auth.certificates is not None else None
    return (HttpAuthenticator(auth, policy, protocol="owa", realm=server_name,
                              channel_binding=binding),
            HttpAuthenticator(auth, policy, protocol="activesync", realm=server_name,
                              certificates=certificates, channel_binding=binding))


def https_app(base: Starlette, auth: AuthService, org: SettingsSource, *, server_name: str,
              certificate_file: Path | None) -> Starlette:
    """The node's HTTPS application: ``base``'s routes (/healthz) plus the probes."""
    owa, activesync = node_authenticators(auth, org, server_name=server_name,
                                          certificate_file=certificate_file)
    return Starlette(routes=[*base.routes, *auth_probe_routes(owa, activesync)])
