"""Forms sessions on the wire: cookies, CSRF checks and the session middleware.

Role: put ``auth.sessions.FormsSessionService`` on HTTP for web mail (and anything
else that signs people in with a form). Web mail mounts ``FormsSessionMiddleware``,
renders its login page with ``FormsAuth.login_form`` and routes the form's POST to
``FormsAuth.handle_login`` and the sign-out button to ``FormsAuth.handle_logoff``;
its endpoints read ``request.state.session`` or call ``require_session(request)``.
docs/sessions.md shows the whole flow.

Invariants:
- cookies are ``__Host-`` prefixed (RFC 6265bis §4.1.3.2: Secure, Path=/, no Domain,
  so no sibling host or plain-HTTP attacker can set or shadow them), ``HttpOnly`` and
  ``SameSite`` (Strict for the login nonce; Lax or Strict for the session);
- the session cookie is a browser-session cookie; lifetimes are enforced server-side;
- every state-changing request (POST, PUT, PATCH, DELETE) that carries a session must
  carry its CSRF token (header ``X-CSRF-Token`` or form field ``csrf_token`` of a
  urlencoded body) and must not come from another origin (``Origin`` and
  ``Sec-Fetch-Site``); refusals are 403 before the application runs;
- the login POST is refused without the token bound to the login-nonce cookie
  (login CSRF), before any password is checked;
- request bodies read here are capped (``MAX_FORM_BODY``); the application receives
  exactly the bytes the client sent;
- the post-login redirect goes to a same-origin path only (security.md A6: no
  ``//host``, no ``/\\host``, no scheme).
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from typing import Literal

from starlette.exceptions import HTTPException
from starlette.requests import Request, cookie_parser
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth.errors import AuthenticationFailed, AuthUnavailable
from auth.sessions import (
    CsrfError,
    FormsSessionService,
    Session,
    check_session_csrf,
    login_csrf_token,
    new_token,
    well_formed,
)

log = logging.getLogger("gateway.http.forms")

SESSION_COOKIE = "__Host-gw-session"
LOGIN_COOKIE = "__Host-gw-login"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
#: Largest urlencoded body read for a login or a CSRF field (octets).
MAX_FORM_BODY = 64 * 1024
#: Most fields in a parsed form.
MAX_FORM_FIELDS = 64
#: Lifetime of the login nonce cookie (seconds): how long a login page stays usable.
LOGIN_NONCE_MAX_AGE = 3600
#: Longest accepted post-login return path.
MAX_RETURN_PATH = 2048

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SameSite = Literal["lax", "strict"]

_SAFE_PATH = re.compile(r"\A/(?![/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@/%?]*\Z")


def set_cookie_value(name: str, value: str, *, same_site: SameSite,
                     max_age: int | None = None) -> str:
    """A ``Set-Cookie`` value with the ``__Host-`` attributes."""
    parts = [f"{name}={value}", "Path=/", "Secure", "HttpOnly",
             f"SameSite={same_site.capitalize()}"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts)


def clear_cookie_value(name: str, *, same_site: SameSite) -> str:
    return set_cookie_value(name, "", same_site=same_site, max_age=0)


def safe_return_path(value: object, default: str) -> str:
    """``value`` when it is a same-origin absolute path, else ``default``."""
    if (isinstance(value, str) and len(value) <= MAX_RETURN_PATH
            and _SAFE_PATH.match(value) and "\\" not in urllib.parse.unquote(value)
            and not urllib.parse.unquote(value).startswith("//")):
        return value
    return default


async def read_limited_body(receive: Receive, limit: int) -> tuple[list[Message],
                                                                   bytes | None]:
    """Read the request body messages; ``(messages, body)`` with ``body`` None when it
    exceeds ``limit`` (the messages read so far are returned for replay)."""
    messages: list[Message] = []
    size = 0
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return messages, None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return messages, b"".join(chunks)


def parse_urlencoded(body: bytes) -> dict[str, str] | None:
    """A strict ``application/x-www-form-urlencoded`` body; None if malformed, not
    UTF-8, with too many or repeated fields."""
    try:
        text = body.decode("utf-8")
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=False,
                                       max_num_fields=MAX_FORM_FIELDS, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            return None
        fields[name] = value
    return fields


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _is_urlencoded(scope: Scope) -> bool:
    ctype = (_header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
    return ctype == "application/x-www-form-urlencoded"


def _cross_origin(scope: Scope) -> bool:
    """RFC 6454 origin of the request page differs from ours, or the browser says the
    request is cross-site (Fetch Metadata)."""
    if (_header(scope, b"sec-fetch-site") or "").lower() == "cross-site":
        return True
    origin = _header(scope, b"origin")
    if origin is None:
        return False
    host = _header(scope, b"host") or ""
    return origin.lower() != f"{scope.get('scheme', 'https')}://{host}".lower()


class FormsAuth:
    """Forms login on HTTP for one ``FormsSessionService``."""

    def __init__(self, sessions: FormsSessionService, *, same_site: SameSite = "lax",
                 login_path: str = "/auth/logon", after_login: str = "/",
                 after_logoff: str | None = None) -> None:
        if same_site not in ("lax", "strict"):
            raise ValueError("same_site is 'lax' or 'strict'")
        self.sessions = sessions
        self.same_site: SameSite = same_site
        self.login_path = login_path
        self.after_login = after_login
        self.after_logoff = after_logoff or login_path

    # -- the login page -------------------------------------------------------------

    def login_form(self, request: Request) -> tuple[str, str | None]:
        """The CSRF token to embed in the login form (field ``csrf_token``), and the
        ``Set-Cookie`` value to send with the page (None when the browser already
        holds a usable login nonce)."""
        nonce = request.cookies.get(LOGIN_COOKIE)
        cookie = None
        if not well_formed(nonce):
            nonce = new_token()
            cookie = set_cookie_value(LOGIN_COOKIE, nonce, same_site="strict",
                                      max_age=LOGIN_NONCE_MAX_AGE)
        return login_csrf_token(str(nonce)), cookie

    async def handle_login(self, request: Request) -> Response:
        """POST of the login form: fields ``username``, ``password``, ``csrf_token``,
        optional ``return_url`` (a same-origin path)."""
        if not _is_urlencoded(request.scope):
            return _no_store(PlainTextResponse("Unsupported form encoding.", 415))
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BODY:
                return _no_store(PlainTextResponse("Form too large.", 413))
        form = parse_urlencoded(bytes(body))
        if form is None:
            return _no_store(PlainTextResponse("Malformed form.", 400))
        client = request.client.host if request.client else ""
        try:
            session = await self.sessions.login(
                form.get("username", ""), form.get("password", ""),
                nonce=request.cookies.get(LOGIN_COOKIE), csrf_token=form.get(CSRF_FIELD),
                source_ip=client, user_agent=request.headers.get("user-agent", ""))
        except CsrfError:
            return _no_store(PlainTextResponse(
                "The sign-in page expired or was not ours. Reload it and try again.", 403))
        except AuthenticationFailed:
            # OWA's convention: back to the form with reason=2 (wrong name or password).
            target = f"{self.login_path}?reason=2"
            return _no_store(RedirectResponse(target, status_code=303))
        except AuthUnavailable:
            return _no_store(PlainTextResponse("Sign-in is temporarily unavailable.", 503,
                                               headers={"Retry-After": "30"}))
        target = safe_return_path(form.get("return_url"), self.after_login)
        response = _no_store(RedirectResponse(target, status_code=303))
        response.headers.append("set-cookie", set_cookie_value(
            SESSION_COOKIE, session.session_id, same_site=self.same_site))
        response.headers.append("set-cookie", clear_cookie_value(LOGIN_COOKIE,
                                                                 same_site="strict"))
        return response

    async def handle_logoff(self, request: Request) -> Response:
        """POST sign-out (behind ``FormsSessionMiddleware``, which checked CSRF): the
        session ends server-side and the cookie is cleared."""
        session = getattr(request.state, "session", None)
        if isinstance(session, Session):
            await self.sessions.logoff(session.session_id)
        response = _no_store(RedirectResponse(self.after_logoff, status_code=303))
        response.headers.append("set-cookie", clear_cookie_value(SESSION_COOKIE,
                                                                 same_site=self.same_site))
        return response


def _no_store(response: Response) -> Response:
    response.headers["cache-control"] = "no-store"
    return response


def require_session(request: Request) -> Session:
    """The request's session, or HTTP 401 (a dependency for web mail endpoints)."""
    session = getattr(request.state, "session", None)
    if not isinstance(session, Session):
        raise HTTPException(status_code=401, detail="Sign-in required.")
    return session


class FormsSessionMiddleware:
    """ASGI middleware: resolve the session cookie, enforce CSRF on unsafe methods.

    Sets ``scope["state"]["session"]`` (``request.state.session``) to the live
    ``Session`` or None. A cookie naming an ended session is cleared in the response.
    ``exempt_paths`` skip the CSRF check (the login POST, which checks its own token).
    """

    def __init__(self, app: ASGIApp, forms: FormsAuth, *,
                 exempt_paths: frozenset[str] | None = None) -> None:
        self.app = app
        self.forms = forms
        self.exempt = exempt_paths if exempt_paths is not None else \
            frozenset({forms.login_path})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookies = cookie_parser(_header(scope, b"cookie") or "")
        raw = cookies.get(SESSION_COOKIE)
        try:
            session = await self.forms.sessions.resolve(raw) if raw else None
        except AuthUnavailable:
            await PlainTextResponse("Temporarily unavailable.", 503,
                                    headers={"Retry-After": "30"})(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["session"] = session
        if session is not None and scope.get("method") in UNSAFE_METHODS \
                and scope.get("path") not in self.exempt:
            replay = await self._csrf_refusal(scope, receive, session)
            if isinstance(replay, Response):
                await replay(scope, receive, send)
                return
            receive = replay
        if raw and session is None:
            send = _clearing_send(send, clear_cookie_value(SESSION_COOKIE,
                                                           same_site=self.forms.same_site))
        await self.app(scope, receive, send)

    async def _csrf_refusal(self, scope: Scope, receive: Receive,
                            session: Session) -> Response | Receive:
        """A 403 response, or the ``receive`` to hand on (replaying a read body)."""
        if _cross_origin(scope):
            log.info("refused a cross-origin %s %s", scope.get("method"), scope.get("path"))
            return PlainTextResponse("Cross-origin request refused.", 403)
        if check_session_csrf(session, _header(scope, CSRF_HEADER.encode())):
            return receive
        if not _is_urlencoded(scope):
            return PlainTextResponse("Missing or wrong CSRF token.", 403)
        messages, body = await read_limited_body(receive, MAX_FORM_BODY)
        form = parse_urlencoded(body) if body is not None else None
        if form is None or not check_session_csrf(session, form.get(CSRF_FIELD)):
            return PlainTextResponse("Missing or wrong CSRF token.", 403)
        pending = list(messages)

        async def replay() -> Message:
            if pending:
                return pending.pop(0)
            return await receive()

        return replay


def _clearing_send(send: Send, cookie: str) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            headers.append((b"set-cookie", cookie.encode("latin-1")))
            message = {**message, "headers": headers}
        await send(message)
    return wrapped
