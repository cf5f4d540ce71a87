"""One launcher per run folder: an ``fcntl.flock`` on ``<workdir>/.lock`` held for the launch.

The lock dies with its holder (a SIGKILLed or crashed launcher leaves no stale lock), and the
file's contents (host, pid, start time) name the holder for the second launcher's error. On NFS,
Linux implements ``flock`` with POSIX byte-range locks, so it holds across hosts there too.

    with workdir_lock(Path("runs/demo")):   # WorkdirBusy if another launcher holds it
        ...plan, submit, collect, seal...
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from heal_batch.store.layout import Layout


class WorkdirBusy(RuntimeError):
    """Another launcher holds the run folder's lock; the message names it (host, pid)."""


@contextlib.contextmanager
def workdir_lock(workdir: Path) -> Iterator[None]:
    """Hold the run folder's lock for the ``with`` block, or raise WorkdirBusy at once."""
    path = Layout(workdir).lock
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkdirBusy(
                f"{workdir} is in use by another heal-batch launcher "
                f"({_holder(fd)}); wait for it to finish or stop it, then run "
                "again"
            ) from None
        holder = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"host {info['host']}, pid {info['pid']}, since {info.get('since', '?')}"
    except (ValueError, KeyError, TypeError, OSError):
        return "holder unknown"
