"""The open-files limit, raised at start by every long-running conveyor process."""

from __future__ import annotations

import logging
import resource

log = logging.getLogger("conveyor.rlimits")


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns (before, after).

    The common default soft limit of 1,024 is far below what a server of long polls and
    keep-alive connections needs, and the hard limit is the operator's real ceiling. Where
    the hard limit is unlimited, the soft limit goes to the kernel's per-process maximum."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else _kernel_maximum()
    if wanted == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY or wanted <= soft:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError):  # e.g. macOS refuses more than OPEN_MAX
        log.debug("could not raise the open-files limit to %d", wanted, exc_info=True)
        return soft, soft
    return soft, wanted


def _kernel_maximum() -> int:
    try:
        with open("/proc/sys/fs/nr_open") as file:
            return int(file.read())
    except (OSError, ValueError):
        return 65_536


def open_files_limit() -> int:
    """The soft RLIMIT_NOFILE now (the kernel's maximum when unlimited)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return _kernel_maximum() if soft == resource.RLIM_INFINITY else soft
