"""CSRF protection for the dashboard's forms: a per-session token, double-submitted.

A browser session gets a random token in an HttpOnly, SameSite=Strict cookie, and every
page embeds the same token in its forms. A POST passes only when the form's token equals
the cookie's and, when the browser sends `Origin`, the origin is this server (`null`
refused): another site can make a browser send the cookie but cannot read the token to
put in the form, so the cookie alone never authorises anything. Stateless, so any server
process can check it.

The app-wide guard (`conveyor.forgery`, applied by `conveyor.http.auth`) runs first on
every dashboard request: without API keys the Host must be loopback or allowed, so a page
whose DNS name was rebound to this machine cannot read a page to learn the token; the
Origin check is repeated here so that the forms hold on their own.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

from conveyor.forgery import origin_refusal

COOKIE = "conveyor_csrf"
FIELD = "csrf_token"
_TOKEN_BYTES = 32


def session_token(request: Request) -> tuple[str, bool]:
    """The session's token and whether it is new (then `set_cookie` must be called)."""
    token = request.cookies.get(COOKIE, "")
    if 20 <= len(token) <= 100 and token.replace("-", "").replace("_", "").isalnum():
        return token, False
    return secrets.token_urlsafe(_TOKEN_BYTES), True


def set_cookie(response: Response, token: str, secure: bool) -> None:
    """Store the session's token in the browser (not readable by scripts)."""
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=secure,
                        path="/")


def check(request: Request, form_token: str | None) -> str | None:
    """None when the POST may proceed, else why not."""
    cookie = request.cookies.get(COOKIE)
    if not cookie or not form_token:
        return "The form has no session token: reload the page and try again."
    if not hmac.compare_digest(cookie.encode(), form_token.encode()):
        return "The form's session token does not match: reload the page and try again."
    allowed = getattr(request.app.state, "allowed_hosts", ())
    if origin_refusal(request.headers.get("origin"), request.headers.get("host"), allowed):
        return "The form was posted from another site."
    return None
