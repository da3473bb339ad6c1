"""Wake-ups between the processes sharing a SQLite file, pushed over Unix datagram sockets.

SQLite has no LISTEN/NOTIFY: a process learns of another's send by polling (`PRAGMA
data_version`, then the signals table). A poll every few milliseconds costs a thread hop each
time while idle, and still makes a long poll wait half an interval on average. So each
listening process binds a datagram socket in a directory named after the database file, and
a signal sends the queue's id to every socket there: a waiting receive wakes within a
fraction of a millisecond, and the poll stays only as the fallback (for a sender that cannot
reach the directory, or a node of an older version), at a slower pace.

A datagram is a hint, never the truth: one lost (a full socket buffer, a process gone) only
delays a receive to the next poll. Sockets of processes that died are removed by the first
sender that finds nobody behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

from conveyor.digits import integer

log = logging.getLogger("conveyor.storage.sqlite")

# Where a database's sockets live: short, whatever the database's path (a socket's path
# must fit in about 100 bytes), and the same for every process that opens that file.
ROOT = Path(tempfile.gettempdir())
_MAX_DATAGRAM = 64


def wake_directory(database: str) -> Path:
    """The directory of the wake sockets of one database file."""
    digest = hashlib.sha256(os.path.realpath(database).encode()).hexdigest()[:20]
    return ROOT / f"conveyor-wake-{digest}"


def available() -> bool:
    """Unix datagram sockets exist here (not on Windows)."""
    return hasattr(socket, "AF_UNIX")


class WakeSockets:
    """This process's socket for one database file, and the sending to everybody's."""

    def __init__(self, database: str) -> None:
        self.directory = wake_directory(database)
        self._sender: socket.socket | None = None
        self._listener: socket.socket | None = None
        self._own: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def listen(self, callback: Callable[[int | None], None]) -> bool:
        """Bind this process's socket and call `callback(queue_id)` for every datagram;
        False when that cannot be done here (then only polling wakes this process)."""
        if not available():
            return False
        own = str(self.directory / f"{os.getpid()}-{id(self):x}")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        for attempt in range(2):
            try:
                self.directory.mkdir(mode=0o700, exist_ok=True)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(own)  # a reused pid's leftover
                sock.bind(own)
                break
            except OSError as exc:
                # FileNotFoundError the first time: the last process out removed the
                # directory between our mkdir and bind; once more.
                if attempt == 0 and isinstance(exc, FileNotFoundError):
                    continue
                log.info("sqlite wake socket unavailable (%s): polling only", exc)
                sock.close()
                return False
        self._listener, self._own = sock, own
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable, callback)
        return True

    def _readable(self, callback: Callable[[int | None], None]) -> None:
        assert self._listener is not None
        while True:
            try:
                data = self._listener.recv(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            callback(integer(data.decode("ascii", "replace")))

    def send(self, queue_id: int) -> None:
        """Tell every other listening process of this file that `queue_id` has messages
        (without blocking: a busy receiver's full buffer drops the hint)."""
        if not available():
            return
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return
        if self._sender is None:
            self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sender.setblocking(False)
        payload = str(queue_id).encode()
        for entry in entries:
            if entry.path == self._own:
                continue  # this storage's broker woke its own receives already
            try:
                self._sender.sendto(payload, entry.path)
            except (BlockingIOError, InterruptedError):
                pass  # its buffer is full: it is awake and busy, or the poll will tell it
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)  # nobody is bound there: its process is gone
            except OSError:
                pass

    def close(self) -> None:
        """Stop listening and remove this process's socket."""
        if self._listener is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None
        if self._own is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._own)
            self._own = None
            with contextlib.suppress(OSError):
                self.directory.rmdir()  # only when it is empty: the last one out
        if self._sender is not None:
            self._sender.close()
            self._sender = None
