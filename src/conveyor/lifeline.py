"""Child processes that die with their supervisor.

`die_with(parent_pid)` is called first thing in a supervised child (`serve --workers N`,
`worker --processes N`). On Linux it asks the kernel for SIGKILL when the parent dies
(`prctl(PR_SET_PDEATHSIG)`); elsewhere, or when that call fails, a daemon thread watches
`os.getppid()` and kills the process once it no longer names the parent (an orphan is
adopted by pid 1 or a subreaper). Either way a `kill -9` of the supervisor leaves no
children holding its sockets, so a restarted `conveyor serve` binds its ports again.

SIGKILL, not SIGTERM: with nobody left to restart them, children must be gone within a
second, and what they held (leases, claimed slots) comes back by its own timeout as after
any crash. The kernel signal fires when the *thread* that started the child ends, so
supervisors start children from their main thread. A child is armed once its imports are
done; one whose supervisor dies before that dies as soon as it gets there.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading

log = logging.getLogger("conveyor.lifeline")

_PR_SET_PDEATHSIG = 1
WATCH_INTERVAL = 0.2
"""Seconds between looks at the parent pid, where the kernel signal is unavailable."""


def die_with(parent_pid: int) -> str:
    """Make this process die when `parent_pid` (its parent) dies; returns how ("prctl" or
    "watch"). Exits at once when the parent is already gone."""
    how = "prctl" if _parent_death_signal() else "watch"
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        _die()
    if how == "watch":
        threading.Thread(target=_watch, args=(parent_pid,), name="conveyor-lifeline",
                         daemon=True).start()
    return how


def _parent_death_signal() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)) == 0
    except (OSError, AttributeError):  # no prctl in this libc: the watch thread does it
        return False


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        threading.Event().wait(WATCH_INTERVAL)
    _die()


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
