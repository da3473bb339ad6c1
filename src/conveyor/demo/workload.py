"""The demo's notifications: deterministic per index, so the sinks can check content."""

from __future__ import annotations

from typing import Any

import orjson

TEMPLATES = {
    "demo.subject": "Your code, {{ name }}",
    "demo.txt": "Hi {{ name }},\nyour code is {{ code }}.\nSee you soon.",
}


def data(i: int) -> dict[str, object]:
    """Template data of notification i."""
    return {"name": f"User {i}", "code": i * 7919 % 1_000_003}


def expected_text(i: int) -> str:
    """What notification i's text must say (the template rendered by hand)."""
    return f"Hi User {i},\nyour code is {i * 7919 % 1_000_003}.\nSee you soon."


def email_address(i: int) -> str:
    """Recipient of email i."""
    return f"user{i}@example.com"


def check_email(rcpt: str, message: bytes) -> bool:
    """Whether a received email carries notification i's text."""
    i = int(rcpt[4:rcpt.index("@")])
    body = expected_text(i).replace("\n", "\r\n").encode()
    return message.rstrip(b"\r\n").endswith(b"\r\n\r\n" + body) and \
        f"Subject: Your code, User {i}\r\n".encode() in message


def check_push(sub: str, plain: bytes) -> bool:
    """Whether a decrypted push payload is notification `sub`'s."""
    got = orjson.loads(plain)
    i = int(sub)
    return bool(got.get("body") == expected_text(i) and got.get("title") ==
                f"Your code, User {i}")


def fcm_index(token: str) -> int:
    """The notification index an FCM token of the demo stands for (`fcm_token(i)`)."""
    return int(token[3:11])


def check_fcm(token: str, message: dict[str, Any]) -> bool:
    """Whether an FCM message carries notification i's title and text."""
    i = fcm_index(token)
    note = message.get("notification") or {}
    return bool(note.get("title") == f"Your code, User {i}" and
                note.get("body") == expected_text(i))


def check_apns(token: str, payload: dict[str, Any], headers: dict[str, str]) -> bool:
    """Whether an APNs payload carries notification i's alert (and the demo's topic)."""
    i = int(token, 16)
    alert = payload["aps"].get("alert") or {}
    return bool(alert.get("title") == f"Your code, User {i}" and
                alert.get("body") == expected_text(i) and
                headers.get("apns-push-type") == "alert")
