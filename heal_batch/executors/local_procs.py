"""Find and stop the task processes of the local executor from another shell (Linux /proc).

The local executor runs each task through submitit's ``LocalExecutor``: a controller process
(``python -m submitit.local._local <logs>/<pid>``) whose pid names its log folder and whose child
runs the task; the controller's parent is the ``heal-batch run`` that launched it. So a stage
run's pid record is its log folder: ``runs/<stage>/<run_key>/logs/<pid>/``.

    pids = live_controllers(layout.logs("generate", key))   # controllers still running
    stopped = stop_local_tasks(pids)                         # launcher first, then the tasks
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from heal_batch.executors.base import CancelOutcome, JobState

CONTROLLER_MODULE = "submitit.local._local"


@dataclass
class LocalStop:
    """What :func:`stop_local_tasks` did: killed task controllers, launchers sent SIGTERM, and
    parents left alone because they are not a heal-batch command."""

    killed: list[int] = field(default_factory=list)
    launchers: list[int] = field(default_factory=list)
    foreign_parents: list[int] = field(default_factory=list)


def live_controllers(logs: Path) -> list[int]:
    """Pids of running submitit controllers that own a folder ``logs/<pid>/``."""
    if not logs.is_dir():
        return []
    pids = []
    for folder in logs.iterdir():
        if folder.name.isdigit() and CONTROLLER_MODULE in _cmdline(int(folder.name)):
            pids.append(int(folder.name))
    return sorted(pids)


def stop_local_tasks(controllers: list[int], grace_s: float = 5.0) -> LocalStop:
    """Stop the launcher of each controller (SIGTERM: it kills its tasks and exits, so it starts no
    further task), then SIGKILL each controller and its task processes that are still alive.

    A parent is treated as the launcher only when its command line is a heal-batch command;
    others (a Python script, pytest) are left alone and listed in ``foreign_parents``."""
    stop = LocalStop()
    children = {pid: _children(pid) for pid in controllers}
    for parent in sorted({_parent(pid) for pid in controllers} - {None, 0, 1}):
        if _is_heal_batch(_cmdline(parent)):
            with contextlib.suppress(OSError):
                os.kill(parent, signal.SIGTERM)
                stop.launchers.append(parent)
        else:
            stop.foreign_parents.append(parent)
    deadline = time.monotonic() + (grace_s if stop.launchers else 0)
    while time.monotonic() < deadline and any(_alive(pid) for pid in controllers):
        time.sleep(0.1)
    for pid in controllers:
        for child in children[pid] + _children(pid):
            with contextlib.suppress(OSError):
                os.kill(child, signal.SIGKILL)  # the task ignores SIGTERM (submitit requeue)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        stop.killed.append(pid)
    return stop


def _is_heal_batch(argv: list[str]) -> bool:
    """A ``heal-batch`` console script or ``python -m heal_batch.cli``."""
    return any(Path(arg).name == "heal-batch" or arg == "heal_batch.cli" for arg in argv[:3])


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])  # the name in () may hold spaces


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


class LocalJobs:
    """:class:`~heal_batch.executors.base.JobControl` for a local run: its tasks are processes
    of this host, found by their log folders; job ids mean nothing once the launcher is gone."""

    def states(self, submitted: Mapping[int, str]) -> dict[int, JobState]:
        return {}

    def held(self, job_ids: set[str]) -> set[str]:
        return set()

    def cancel(self, job_ids: set[str], logs: Path) -> CancelOutcome:
        pids = live_controllers(logs)
        if not pids:
            return CancelOutcome(
                note=f"no pid record of a running task: no live submitit "
                f"controller under {logs} (the tasks are not running, or ran "
                "on another machine)"
            )
        stop = stop_local_tasks(pids)
        notes = [f"stopped launcher pid {pid}" for pid in stop.launchers]
        notes += [
            f"parent pid {pid} is not a heal-batch command: left running"
            for pid in stop.foreign_parents
        ]
        return CancelOutcome([f"pid {pid}" for pid in stop.killed], note="; ".join(notes) or None)


class InProcessJobs:
    """:class:`~heal_batch.executors.base.JobControl` for the debug executor: nothing to ask."""

    def states(self, submitted: Mapping[int, str]) -> dict[int, JobState]:
        return {}

    def held(self, job_ids: set[str]) -> set[str]:
        return set()

    def cancel(self, job_ids: set[str], logs: Path) -> CancelOutcome:
        return CancelOutcome(
            note="debug executor: tasks run inside the heal-batch process that "
            "launched them; stop that process (Ctrl-C)"
        )
