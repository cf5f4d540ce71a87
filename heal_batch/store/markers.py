"""Task start markers: which process, on which host, started a task.

A task writes ``runs/<stage>/<run_key>/started/<i>.json`` (host, pid, the process's start time,
its log file when the executor gives one) as it begins. A launcher killed with SIGKILL leaves its
local task processes running; before the next launcher starts a task again it calls
:func:`live_start`, which returns the marker when that process is still alive on this host (and is
not this process), so the task is not run twice side by side. Markers from other hosts (Slurm
nodes) are not judged here: Slurm is asked instead. ``heal-batch logs`` reads the log file.

    write_start_marker(layout, "generate", key, 3)        # first thing in the task
    live_start(layout, "generate", key, 3)                # {"host": ..., "pid": ...} or None
    clear_start_marker(layout, "generate", key, 3)        # after the task's final receipt
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from heal_batch.store.atomic import write_json_atomic
from heal_batch.store.layout import Layout


def write_start_marker(
    layout: Layout, stage: str, key: str, index: int, log_path: str | None = None
) -> Path:
    """Record that this process starts task ``index``; returns the marker's path."""
    path = layout.start_marker(stage, key, index)
    write_json_atomic(
        path,
        {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "pid_start": _start_time(os.getpid()),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "log_path": log_path,
        },
    )
    return path


def clear_start_marker(layout: Layout, stage: str, key: str, index: int) -> None:
    """The task is over (its final receipt is written): its process may still be tearing down
    (a vLLM engine takes seconds), but it no longer holds the task."""
    layout.start_marker(stage, key, index).unlink(missing_ok=True)


def live_start(layout: Layout, stage: str, key: str, index: int) -> dict[str, Any] | None:
    """The task's start marker if the process that wrote it still runs on this host, else None
    (no marker, an unreadable one, another host, this very process, or a dead or reused pid)."""
    marker = _read(layout, stage, key, index)
    try:
        host, pid, started = marker["host"], marker["pid"], marker.get("pid_start")
    except (KeyError, TypeError):
        return None
    if host != socket.gethostname() or not isinstance(pid, int) or pid in (os.getpid(), 0):
        return None
    if not _alive(pid) or (started is not None and _start_time(pid) not in (None, started)):
        return None
    return marker


def marker_log_path(layout: Layout, stage: str, key: str, index: int) -> str | None:
    """The log file the task's start marker names (None: no marker, none named, unreadable)."""
    path = (_read(layout, stage, key, index) or {}).get("log_path")
    return path if isinstance(path, str) else None


def _read(layout: Layout, stage: str, key: str, index: int) -> dict[str, Any] | None:
    """The marker's JSON object; None when there is none or it is unreadable or not an object."""
    try:
        marker = json.loads(layout.start_marker(stage, key, index).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except OSError:
        return False
    return True


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks after boot (Linux /proc), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None
