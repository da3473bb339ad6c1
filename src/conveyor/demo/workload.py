"""The demo's notifications: deterministic per index, so the sinks can check content."""

from __future__ import annotations

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
