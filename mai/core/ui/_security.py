"""Who may talk to ``mai ui``: a token, a Host check, an Origin check and a CSRF token.

The rules, in the order a request meets them (a pure ASGI middleware, so no route runs before):

1. **Host** (DNS rebinding): the ``Host`` header must name the address the server listens on
   (``127.0.0.1:PORT``, ``localhost:PORT``, ``[::1]:PORT``, or the explicitly bound address).
   A page on ``evil.example`` whose name was re-pointed at 127.0.0.1 sends ``Host:
   evil.example`` and gets 403.
2. **Token** (other local users): the printed URL carries ``?token=...`` (as Jupyter's does);
   the first visit trades it for an ``HttpOnly``, ``SameSite=Strict`` cookie and is redirected
   to the same URL without it. Scripts may send ``Authorization: Bearer TOKEN``. Without either:
   401 and no run data.
3. **Actions** (cross-site requests): every request that changes something is a ``POST`` whose
   ``Origin`` is this server and which carries the ``X-CSRF-Token`` header the page got from
   ``/api/session``; otherwise 403.
"""

from __future__ import annotations

import hmac
import secrets
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Headers sent with every response: no framing, no sniffing, no referrer, only our own files.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        (
            b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            b"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        ),
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)

_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


class Guard:
    """The security rules of one server (see the module docstring).

    Args:
        app: The ASGI application it protects.
        token: The secret of the printed URL.
        hosts: ``host:port`` values the ``Host`` header may carry (lower case).
        cookie_name: Name of the session cookie (per port, so two servers do not collide).
    """

    def __init__(self, app: ASGIApp, token: str, hosts: set[str], cookie_name: str) -> None:
        """Wrap ``app``."""
        self.app = app
        self.token = token
        self.hosts = {h.lower() for h in hosts}
        self.cookie_name = cookie_name
        self.csrf = hmac.new(token.encode(), b"mai-ui-csrf", "sha256").hexdigest()

    def origins(self) -> set[str]:
        """The ``Origin`` values of this server's own pages."""
        return {f"http://{h}" for h in self.hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Apply the rules, then hand the request to the application."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "").lower()
        if host not in self.hosts:
            await _plain(send, 403, "this server answers only to its own address (Host check)")
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        given = query.get("token")
        if given is not None and scope["method"] == "GET":
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                await _plain(send, 401, "wrong token: open the URL that `mai ui` printed")
                return
            rest = urlencode([(k, v) for k, v in query.items() if k != "token"])
            location = scope.get("path", "/") + (f"?{rest}" if rest else "")
            cookie = (
                f"{self.cookie_name}={self.token}; HttpOnly; SameSite=Strict; Path=/"
            ).encode()
            await _plain(
                send,
                303,
                "signed in",
                extra=((b"location", location.encode()), (b"set-cookie", cookie)),
            )
            return
        if not self._authorised(headers):
            await _plain(send, 401, "open the URL with its token that `mai ui` printed")
            return
        if scope["method"] in _UNSAFE_METHODS:
            origin = headers.get("origin")
            if origin is None or origin.lower() not in self.origins():
                await _plain(send, 403, "cross-site request refused (Origin check)")
                return
            csrf = headers.get("x-csrf-token", "")
            if not hmac.compare_digest(csrf.encode(), self.csrf.encode()):
                await _plain(send, 403, "missing or wrong CSRF token")
                return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, secured)

    def _authorised(self, headers: dict[str, str]) -> bool:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and hmac.compare_digest(
            auth[7:].strip().encode(), self.token.encode()
        ):
            return True
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(headers.get("cookie", ""))
        except CookieError:  # an unreadable Cookie header
            return False
        morsel = jar.get(self.cookie_name)
        return morsel is not None and hmac.compare_digest(
            morsel.value.encode(), self.token.encode()
        )


async def _plain(
    send: Send, status: int, text: str, extra: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    body = f"{status}: {text}\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *SECURITY_HEADERS,
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
