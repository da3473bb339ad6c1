"""Hanging up on a server mid-request, as a killed or stopped client does."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit


def abandon(url: str, path: str, body: bytes, headers: dict[str, str]) -> None:
    """Start a request, leave it waiting for a moment, then close the connection."""
    where = urlsplit(url)
    lines = [f"POST {path} HTTP/1.1", f"Host: {where.netloc}",
             f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection((where.hostname, where.port)) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        time.sleep(0.3)  # the server is in the long poll now
    time.sleep(0.5)  # and reads the hang-up (a loaded host may take its time)
