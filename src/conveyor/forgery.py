"""Requests a web page could forge, and the rules that refuse them. Pure functions.

A page on any site can make the developer's browser send requests to a server on
loopback: form posts (`application/x-www-form-urlencoded`, `multipart/form-data`,
`text/plain`), image and link GETs, `fetch` in no-cors mode, WebSockets. When its DNS name
is rebound to 127.0.0.1, it can even read the answers. So, besides keys:

- `Host` must be a loopback name or address, or a configured allowed host (only in the
  no-key mode: that is the DNS-rebinding guard; with keys, a rebound page holds no key).
- `Origin`, when sent, must be this server (its `host:port` equal to `Host`, or an allowed
  host); `null` (sandboxed frames, some redirects) is refused. Browsers send it on every
  cross-origin POST and every WebSocket handshake.
- `Sec-Fetch-Site: cross-site` or `same-site` (other ports of localhost are same-site) is
  refused, but for plain GET navigations to pages without side effects.
- Bodies: JSON only as `application/json`, the SQS protocols only as their own content
  types; what a form can send is refused where a form is not the protocol.

Each rule answers with a `Refusal`: an HTTP status, a machine-readable code and a sentence.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
# GET routes whose effect is more than a read: a cross-site navigation must not reach them.
_GET_WITH_EFFECTS = ("/wq",)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused: status, machine-readable code, one sentence."""

    status: int
    code: str
    message: str


def is_loopback(host: str) -> bool:
    """True for addresses only this machine reaches (127.0.0.0/8, ::1, localhost)."""
    host = host.strip("[]").lower().rstrip(".")
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_host(host: str) -> str:
    """The name or address of a `Host` value, without its port (IPv6 keeps no brackets)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        return host.partition(":")[0]
    return host


def normalise_hosts(hosts: Iterable[str]) -> tuple[str, ...]:
    """Allowed-host entries as compared: lower case, no trailing dot."""
    return tuple(h.strip().lower().rstrip(".") for h in hosts if h.strip())


def _allowed(host: str, allowed: Sequence[str]) -> bool:
    """`host` (a Host value, maybe with a port) names an allowed host."""
    host = host.strip().lower().rstrip(".")
    return host in allowed or split_host(host).rstrip(".") in allowed


def host_refusal(host: str | None, allowed: Sequence[str]) -> Refusal | None:
    """The DNS-rebinding guard of the no-key mode: `Host` names this machine."""
    if host is None:  # HTTP/1.0 without Host: no browser sends that
        return None
    if is_loopback(split_host(host)) or _allowed(host, allowed):
        return None
    return Refusal(403, "host_not_allowed",
                   f"The Host {host[:100]!r} is not a loopback name and not an allowed host "
                   "(--allowed-host); without API keys only those are served.")


def origin_refusal(origin: str | None, host: str | None,
                   allowed: Sequence[str]) -> Refusal | None:
    """An `Origin`, when sent, must be this server."""
    if origin is None:
        return None
    origin = origin.strip()
    netloc = urlsplit(origin).netloc.lower() if "://" in origin else ""
    if netloc and (netloc == (host or "").strip().lower() or _allowed(netloc, allowed)):
        return None
    return Refusal(403, "origin_not_allowed",
                   f"Requests from the web page at {origin[:100]!r} are refused: the Origin "
                   "must be this server.")


def fetch_site_refusal(site: str | None, mode: str | None, method: str, path: str, *,
                       navigable: bool = True) -> Refusal | None:
    """Fetch metadata: refuse what another site's page started, but for plain page
    navigations (a link to the dashboard), which show the answer to the user only.

    `navigable=False`: no GET here is a mere read (the SQS query protocol)."""
    if site is None or site.lower() in ("same-origin", "none"):
        return None
    navigation = (navigable and method in ("GET", "HEAD")
                  and (mode or "").lower() == "navigate"
                  and not path.startswith(_GET_WITH_EFFECTS))
    if navigation:
        return None
    return Refusal(403, "cross_site_request",
                   f"A request started by another site's page ({site[:20]}) is refused.")


def media_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` -> `application/json`."""
    return (content_type or "").partition(";")[0].strip().lower()


def json_body_refusal(method: str, headers: Mapping[str, str]) -> Refusal | None:
    """A body (or a declared content type) on a JSON route must be `application/json`:
    the types a form can send never reach a JSON route."""
    if method not in UNSAFE_METHODS:
        return None
    content_type = headers.get("content-type")
    has_body = (headers.get("content-length", "0").strip() not in ("", "0")
                or "transfer-encoding" in headers)
    if content_type is None and not has_body:
        return None
    if media_type(content_type) == "application/json":
        return None
    return Refusal(415, "unsupported_media_type",
                   f"The body must be JSON sent as Content-Type: application/json, not "
                   f"{(content_type or 'none')[:100]!r}.")


def browser_refusal(method: str, path: str, headers: Mapping[str, str], *,
                    check_host: bool, allowed: Sequence[str],
                    navigable: bool = True) -> Refusal | None:
    """Host (when `check_host`), Origin and fetch-metadata rules, the first that fails.

    `headers` has lower-case names."""
    host = headers.get("host")
    if check_host and (refused := host_refusal(host, allowed)):
        return refused
    if refused := origin_refusal(headers.get("origin"), host, allowed):
        return refused
    return fetch_site_refusal(headers.get("sec-fetch-site"), headers.get("sec-fetch-mode"),
                              method, path, navigable=navigable)
