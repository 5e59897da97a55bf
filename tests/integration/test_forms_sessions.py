"""Forms sessions over real HTTPS (uvicorn via HttpService, httpx as the browser):
login form → login → session → CSRF-protected action → logoff, cookie attributes as
they appear on the wire, login CSRF, cross-origin refusals, and a password change on
the store ending the session. Cookies are handled by hand, so the test sees exactly
what a browser would be told.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from auth.directories.local import LocalDirectory
from auth.hashing import HashRunner
from auth.passwords import hash_password
from auth.service import AuthService
from auth.sessions import FormsSessionService, SessionPolicy
from gateway.config import Endpoint
from gateway.http.forms import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    FormsAuth,
    FormsSessionMiddleware,
    require_session,
)
from gateway.http.server import HttpService
from gateway.store import Store, open_store
from tests.pki import TestPki

pytestmark = pytest.mark.slow

ALICE = "alice@example.test"
PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_app(forms: FormsAuth) -> Starlette:
    """The smallest web mail: a login page, an inbox, a state-changing action."""

    async def logon_page(request: Request) -> Response:
        token, cookie = forms.login_form(request)
        response = HTMLResponse(
            f'<form method="post" action="/auth/logon"><input name="{CSRF_FIELD}" '
            f'value="{token}"><input name="username"><input name="password"></form>')
        if cookie:
            response.headers.append("set-cookie", cookie)
        response.headers["cache-control"] = "no-store"
        return response

    async def inbox(request: Request) -> JSONResponse:
        session = require_session(request)
        return JSONResponse({"user": session.principal.primary_smtp_address,
                             "csrf": session.csrf_token})

    async def action(request: Request) -> JSONResponse:
        require_session(request)
        body = await request.body()
        return JSONResponse({"done": True, "body": body.decode()})

    return Starlette(routes=[
        Route("/auth/logon", logon_page, methods=["GET"]),
        Route("/auth/logon", forms.handle_login, methods=["POST"]),
        Route("/auth/logoff", forms.handle_logoff, methods=["POST"]),
        Route("/mail", inbox), Route("/mail/action", action, methods=["POST"]),
    ], middleware=[Middleware(FormsSessionMiddleware, forms=forms)])


@dataclass
class Site:
    base: str
    client: httpx.AsyncClient
    store: Store
    mailbox_id: int

    async def login_page(self) -> tuple[str, str]:
        """GET the form; (csrf token, login nonce cookie value)."""
        page = await self.client.get(self.base + "/auth/logon")
        assert page.status_code == 200
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        nonce = cookie_value(page, LOGIN_COOKIE)
        assert nonce
        return token.group(1), nonce

    async def login(self, password: str = PASSWORD, **extra: str) -> httpx.Response:
        token, nonce = await self.login_page()
        return await self.client.post(
            self.base + "/auth/logon", headers={"cookie": f"{LOGIN_COOKIE}={nonce}"},
            data={"username": ALICE, "password": password, CSRF_FIELD: token, **extra})

    async def get(self, path: str, session: str) -> httpx.Response:
        return await self.client.get(self.base + path,
                                     headers={"cookie": f"{SESSION_COOKIE}={session}"})


def set_cookies(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


def cookie_value(response: httpx.Response, name: str) -> str | None:
    for header in set_cookies(response):
        if header.startswith(name + "="):
            return header.split(";", 1)[0].split("=", 1)[1]
    return None


def attributes(response: httpx.Response, name: str) -> set[str]:
    for header in set_cookies(response):
        if header.startswith(name + "="):
            return {part.strip() for part in header.split(";")[1:]}
    raise AssertionError(f"no Set-Cookie for {name}: {set_cookies(response)}")


async def _nosleep(_s: float) -> None:
    return None


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    pki = TestPki(tmp_path / "pki")
    ca = pki.ca("Web CA")
    server = pki.server(ca)
    store = await open_store(f"sqlite:///{tmp_path / 'store.db'}")
    await store.org.create_accepted_domain("example", "example.test")
    mailbox = await store.org.create_mailbox(
        name="alice", primary_smtp_address=ALICE,
        password_hash=await asyncio.to_thread(hash_password, PASSWORD))
    runner = HashRunner(max_workers=1)
    auth = AuthService(LocalDirectory(store.org, runner), store.auth_state, sleep=_nosleep)
    sessions = FormsSessionService(auth, store.sessions, policy=SessionPolicy(
        idle_timeout=600, absolute_timeout=3600))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(server.cert_file, server.key_file)
    port = free_port()
    http = HttpService("https", make_app(FormsAuth(sessions, same_site="lax")),
                       (Endpoint("127.0.0.1", port),), tls=ctx)
    await http.start()
    client_ctx = ssl.create_default_context(cafile=str(ca.cert_file))
    async def forget_cookies(_response: httpx.Response) -> None:
        client.cookies.clear()  # the test sends every cookie by hand

    async with httpx.AsyncClient(verify=client_ctx, follow_redirects=False, timeout=30,
                                 event_hooks={"response": [forget_cookies]}) as client:
        yield Site(f"https://localhost:{port}", client, store, mailbox.id)
    await http.stop(1)
    runner.close()
    await store.close()


async def test_login_session_logoff_on_the_wire(site: Site) -> None:
    token, nonce = await site.login_page()
    page = await site.client.get(site.base + "/auth/logon")
    assert attributes(page, LOGIN_COOKIE) == {"Path=/", "Secure", "HttpOnly",
                                              "SameSite=Strict", "Max-Age=3600"}
    resp = await site.client.post(
        site.base + "/auth/logon", headers={"cookie": f"{LOGIN_COOKIE}={nonce}"},
        data={"username": ALICE, "password": PASSWORD, CSRF_FIELD: token,
              "return_url": "/mail"})
    assert resp.status_code == 303 and resp.headers["location"] == "/mail"
    assert resp.headers["cache-control"] == "no-store"
    assert attributes(resp, SESSION_COOKIE) == {"Path=/", "Secure", "HttpOnly",
                                                "SameSite=Lax"}
    assert attributes(resp, LOGIN_COOKIE) >= {"Max-Age=0"}  # the nonce is spent
    session = cookie_value(resp, SESSION_COOKIE)
    assert session and session != nonce and len(session) == 43

    inbox = await site.get("/mail", session)
    assert inbox.status_code == 200 and inbox.json()["user"] == ALICE
    csrf = inbox.json()["csrf"]

    # state-changing requests: CSRF header, or the form field (body reaches the app)
    cookie = {"cookie": f"{SESSION_COOKIE}={session}"}
    ok = await site.client.post(site.base + "/mail/action",
                                headers={**cookie, "x-csrf-token": csrf}, content=b"{}")
    assert ok.status_code == 200 and ok.json() == {"done": True, "body": "{}"}
    form = await site.client.post(site.base + "/mail/action", headers=cookie,
                                  data={CSRF_FIELD: csrf, "flag": "seen"})
    assert form.status_code == 200 and form.json()["body"] == f"{CSRF_FIELD}={csrf}&flag=seen"

    out = await site.client.post(site.base + "/auth/logoff",
                                 headers={**cookie, "x-csrf-token": csrf})
    assert out.status_code == 303
    assert attributes(out, SESSION_COOKIE) >= {"Max-Age=0", "Secure", "HttpOnly"}
    # the old cookie is worthless now: server-side logoff
    again = await site.get("/mail", session)
    assert again.status_code == 401
    assert attributes(again, SESSION_COOKIE) >= {"Max-Age=0"}


async def test_csrf_refusals(site: Site) -> None:
    session = cookie_value(await site.login(), SESSION_COOKIE)
    assert session
    cookie = {"cookie": f"{SESSION_COOKIE}={session}"}
    csrf = (await site.get("/mail", session)).json()["csrf"]
    url = site.base + "/mail/action"
    missing = await site.client.post(url, headers=cookie, content=b"{}")
    wrong = await site.client.post(url, headers={**cookie, "x-csrf-token": "A" * 43})
    wrong_field = await site.client.post(url, headers=cookie, data={CSRF_FIELD: "nope"})
    cross = await site.client.post(url, headers={**cookie, "x-csrf-token": csrf,
                                                 "origin": "https://evil.example"})
    fetch_meta = await site.client.post(url, headers={**cookie, "x-csrf-token": csrf,
                                                      "sec-fetch-site": "cross-site"})
    assert [r.status_code for r in (missing, wrong, wrong_field, cross, fetch_meta)] == \
        [403] * 5
    same_origin = await site.client.post(url, headers={
        **cookie, "x-csrf-token": csrf, "origin": site.base})
    assert same_origin.status_code == 200


async def test_login_csrf_is_enforced(site: Site) -> None:
    token, nonce = await site.login_page()
    form = {"username": ALICE, "password": PASSWORD, CSRF_FIELD: token}
    url = site.base + "/auth/logon"
    no_cookie = await site.client.post(url, data=form)
    other_nonce = await site.client.post(url, data=form, headers={
        "cookie": f"{LOGIN_COOKIE}={'B' * 43}"})
    no_token = await site.client.post(url, data={**form, CSRF_FIELD: ""}, headers={
        "cookie": f"{LOGIN_COOKIE}={nonce}"})
    for resp in (no_cookie, other_nonce, no_token):
        assert resp.status_code == 403 and cookie_value(resp, SESSION_COOKIE) is None
    assert await site.store.auth_state.list_audit() == []  # no password was tried


async def test_wrong_password_and_open_redirects(site: Site) -> None:
    bad = await site.login("wrong password")
    assert bad.status_code == 303 and bad.headers["location"] == "/auth/logon?reason=2"
    assert cookie_value(bad, SESSION_COOKIE) is None
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example",
                   "/%2F%2Fevil.example", "javascript:alert(1)"):
        resp = await site.login(return_url=target)
        assert resp.status_code == 303 and resp.headers["location"] == "/", target


async def test_password_change_on_the_store_ends_the_session(site: Site) -> None:
    session = cookie_value(await site.login(), SESSION_COOKIE)
    assert session and (await site.get("/mail", session)).status_code == 200
    await site.store.org.update_mailbox(
        site.mailbox_id, password_hash=await asyncio.to_thread(hash_password, "new one"))
    assert (await site.get("/mail", session)).status_code == 401


async def test_forged_and_malformed_cookies(site: Site) -> None:
    for value in ("A" * 43, "x", "A" * 500, "%00"):
        resp = await site.get("/mail", value)
        assert resp.status_code == 401
    bad_form = await site.client.post(site.base + "/auth/logon", content=b"a=1&a=2",
                                      headers={"content-type":
                                               "application/x-www-form-urlencoded"})
    assert bad_form.status_code == 400
    json_login = await site.client.post(site.base + "/auth/logon", json={"u": 1})
    assert json_login.status_code == 415
    huge = await site.client.post(site.base + "/auth/logon", content=b"a=" + b"x" * 70_000,
                                  headers={"content-type":
                                           "application/x-www-form-urlencoded"})
    assert huge.status_code == 413


def test_session_cookie_attributes_are_fixed() -> None:
    from gateway.http.forms import safe_return_path, set_cookie_value

    assert set_cookie_value(SESSION_COOKIE, "v", same_site="strict") == \
        "__Host-gw-session=v; Path=/; Secure; HttpOnly; SameSite=Strict"
    assert safe_return_path("/mail?folder=Inbox", "/") == "/mail?folder=Inbox"
    assert safe_return_path("/%5Cevil", "/") == "/"


async def test_large_bodies_and_the_csrf_field(site: Site) -> None:
    """A header token lets any body through untouched; a field token is only looked
    for in urlencoded bodies up to 64 KiB."""
    session = cookie_value(await site.login(), SESSION_COOKIE)
    assert session
    cookie = {"cookie": f"{SESSION_COOKIE}={session}"}
    csrf = (await site.get("/mail", session)).json()["csrf"]
    url = site.base + "/mail/action"
    big = "x" * 200_000
    with_header = await site.client.post(url, headers={**cookie, "x-csrf-token": csrf},
                                         data={"note": big})
    assert with_header.status_code == 200 and len(with_header.json()["body"]) > 200_000
    field_too_deep = await site.client.post(url, headers=cookie,
                                            data={"note": big, CSRF_FIELD: csrf})
    assert field_too_deep.status_code == 403
    multipart = await site.client.post(url, headers=cookie, data={CSRF_FIELD: csrf},
                                       files={"f": ("a.txt", b"hello")})
    assert multipart.status_code == 403
    # a session-less POST has no ambient authority to protect: the app decides (401)
    anonymous = await site.client.post(url, content=b"{}")
    assert anonymous.status_code == 401
