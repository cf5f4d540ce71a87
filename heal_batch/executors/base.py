"""The executor interface and what a submission hands back to the launcher."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from heal_batch.pipeline.worker import TaskJob


@dataclass
class Submission:
    """One stage's submitted tasks: job ids, log paths and (debug/local) their errors."""

    stage: str
    job_ids: dict[int, str] = field(default_factory=dict)
    errors: dict[int, str | None] = field(default_factory=dict)
    log_paths: dict[int, str | None] = field(default_factory=dict)
    handles: dict[int, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """Every submitted task has ended (the executor ran them before ``submit`` returned)."""
        return set(self.errors) >= set(self.job_ids)

    @property
    def array_ids(self) -> list[str]:
        """Scheduler job ids to depend on (one per array window)."""
        return sorted({job_id.split("_")[0] for job_id in self.job_ids.values()})


@dataclass(frozen=True)
class JobState:
    """An unfinished task's job as its scheduler sees it: ``pending``, ``running`` or ``failed``,
    and the scheduler's reason in words (e.g. ``Slurm: TIMEOUT: time limit reached (...)``)."""

    state: str
    reason: str


@dataclass
class CancelOutcome:
    """What ``cancel`` did: jobs (or processes) told to stop, ones already ended, and a note."""

    cancelled: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    note: str | None = None


class JobControl(Protocol):
    """What the pipeline may ask about the jobs a past run of one executor submitted (the
    executor's name is recorded in the manifest): their states, which are still held, and how
    to cancel them. ``logs`` is the stage run's log folder (the local executor's pid record)."""

    def states(self, submitted: Mapping[int, str]) -> dict[int, JobState]: ...

    def held(self, job_ids: set[str]) -> set[str]: ...

    def cancel(self, job_ids: set[str], logs: Path) -> CancelOutcome: ...


class Executor(Protocol):
    """``name`` is what manifests record. ``submit`` either runs the tasks before it returns
    (debug, local: the submission's ``errors`` then hold every task) or queues them behind the
    ``after`` submissions (slurm); ``wait`` returns every submitted task's error text, None for
    success. The launcher drives every executor through this one path."""

    name: str
    detached: bool  # submit returns before the tasks run: heal-batch run does not wait by default

    def preview(self, stage: str) -> list[str]:
        """What this stage's jobs would be submitted with (Slurm: #SBATCH lines), for dry runs."""
        ...

    def unavailable(self) -> str | None:
        """Why this executor cannot submit from this machine (None: it can)."""
        ...

    def submit(self, jobs: list[TaskJob], logs: Path, after: list[Submission]) -> Submission: ...

    def wait(self, submission: Submission) -> dict[int, str | None]: ...


def job_error(handle: Any) -> str | None:
    """None when a submitit job returned; otherwise a one-line reason for the status table."""
    try:
        handle.result()
        return None
    except Exception as exc:  # noqa: BLE001 - result() re-raises whatever the task raised
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raised = [
            ln for ln in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt):", ln)
        ]
        if raised:  # the task's own exception, from the remote traceback
            return raised[-1][:500]
        state = getattr(handle, "state", "UNKNOWN")
        return (
            f"{type(exc).__name__}: the task died without a result (state {state}; killed, "
            "out of memory or past its time limit?); see the log"
        )
