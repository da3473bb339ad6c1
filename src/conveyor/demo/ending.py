"""How the demo ends when it is stopped from outside, leaving nothing behind.

- SIGTERM, or a SIGINT sent to the demo alone (not its process group, as Ctrl-C does),
  raises `Interrupted` in the main thread; the run then stops its workers and peers at
  once (no final reports awaited) and removes its temporary files. Later signals during
  that cleanup are ignored, so it is not cut short half-way.
- `kill -9` cannot be handled: every child is armed to die with the demo instead
  (`prctl(PR_SET_PDEATHSIG)`: `conveyor.lifeline` for the Python children, `die_with_us`
  for Postfix's smtp-sink), and a `Janitor`, a tiny process of its own session, kills
  smtp-sink when it runs as root (there the signal does not hold) and removes the run's
  temporary folders (the SQLite file, the sink's dump in /dev/shm: hundreds of MB on a
  million run) once the demo is gone, however it went.

The kernel's parent-death signal fires when the *thread* that forked the child ends, not
the process: the demo starts its children from its main thread (`run_demo`, and `drive`
inside `asyncio.run` on that thread), so it fires when the demo dies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

__all__ = ["Interrupted", "Janitor", "cleaning", "die_with_us", "interrupted",
           "stop_on_signals"]

_PR_SET_PDEATHSIG = 1


class Interrupted(KeyboardInterrupt):
    """The demo was told to stop by a signal (SIGTERM or SIGINT).

    A KeyboardInterrupt, as a Ctrl-C's is: asyncio lets only those (and SystemExit) out of
    a callback or task at once; any other exception raised there would be logged and
    dropped, and the run would go on."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        """The signal's name, as SIGTERM."""
        return signal.Signals(self.signum).name


_received: list[int] = []
_cleaning = [0]


def interrupted() -> int | None:
    """The signal that stopped the run, if one did."""
    return _received[0] if _received else None


def _on_signal(signum: int, frame: FrameType | None) -> None:
    del frame
    if _received:  # already stopping: let the cleanup finish
        return
    _received.append(signum)
    if not _cleaning[0]:
        raise Interrupted(signum)


@contextlib.contextmanager
def cleaning() -> Iterator[None]:
    """A cleanup that a signal must not cut short: one arriving meanwhile is noted (so
    what follows can hurry: `interrupted()`) and raised as `Interrupted` at the end, unless
    an exception is already on its way out."""
    _cleaning[0] += 1
    try:
        yield
    finally:
        _cleaning[0] -= 1
    if _received and not _cleaning[0] and sys.exc_info()[1] is None:
        raise Interrupted(_received[0])


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """While the run lasts, SIGTERM and SIGINT raise `Interrupted` (the first one only).
    Outside the main thread (where Python cannot take signals) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _received.clear()


def die_with_us() -> Callable[[], None] | None:
    """A `preexec_fn` for a child that is no Python process (smtp-sink): SIGKILL when this
    process dies (Linux), or None elsewhere. It runs in the forked child before `exec`; a
    change of user after it (`smtp-sink -u nobody`, as root) clears it (see `Janitor`).
    The libc function is looked up here, so that the child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the demo died before the signal was armed
            os._exit(1)

    return arm


_JANITOR = """\
import os, shutil, signal, sys, time
fd, data = int(sys.argv[1]), b""
while chunk := os.read(fd, 65536):
    data += chunk
paths = []
for entry in (e.decode("utf-8", "surrogateescape") for e in data.split(b"\\0") if e):
    what, _, arg = entry.partition(" ")
    if what == "rm":
        paths.append(arg)
        continue
    pid, started = arg.split()
    try:  # the very process (an orphan now, so its pid is not reused before it dies)
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rpartition(")")[2].split()[19] == started:
                os.kill(int(pid), signal.SIGKILL)
    except (OSError, IndexError):
        pass
for wait in (0.0, 0.2, 1.0):  # a dying child may still be writing there a moment
    time.sleep(wait)
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
    if not any(os.path.lexists(p) for p in paths):
        break
"""


class Janitor:
    """A small process that, once the demo has ended however it ended (even `kill -9`),
    kills the processes and removes the folders it was told of: it reads them from a pipe
    whose only writer is the demo, and the pipe's end is its cue. It runs in a session of
    its own, so a signal to the demo's process group does not take it along; it leaves
    right after.

    The demo ends them itself whenever it can; this is for when it cannot. The processes
    are those the parent-death signal cannot reach: smtp-sink run by root drops to nobody
    by itself (`-u`; it must, as nobody could not run it from root's home), and the kernel
    clears the signal on that change of user."""

    def __init__(self) -> None:
        read, self._write = os.pipe()  # not inherited by the demo's other children
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _JANITOR, str(read)], pass_fds=(read,),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True)
        except BaseException:
            os.close(self._write)
            raise
        finally:
            os.close(read)

    def remove_at_end(self, path: Path) -> None:
        """Remove `path` (a folder) once the demo is gone."""
        self._tell(f"rm {path}")

    def kill_at_end(self, pid: int) -> None:
        """Kill process `pid`, a child of the demo, once the demo is gone (Linux: the
        process is told by its start time; elsewhere nothing is done)."""
        try:
            with open(f"/proc/{pid}/stat") as stat:
                started = stat.read().rpartition(")")[2].split()[19]
        except (OSError, IndexError):
            return
        self._tell(f"kill {pid} {started}")

    def _tell(self, entry: str) -> None:
        os.write(self._write, entry.encode("utf-8", "surrogateescape") + b"\0")

    def close(self) -> None:
        """The demo is ending: the janitor removes what is left, and leaves."""
        os.close(self._write)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:  # it only removes folders; never wait long
            self.proc.kill()
            self.proc.wait()
