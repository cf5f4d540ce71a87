"""The executor interface and what a submission hands back to the launcher."""

from __future__ import annotations

import re
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
    def array_ids(self) -> list[str]:
        """Scheduler job ids to depend on (one per array window)."""
        return sorted({job_id.split("_")[0] for job_id in self.job_ids.values()})


class Executor(Protocol):
    """``name`` is what manifests record; ``submit`` may block (debug, local) or return at once
    (slurm); ``wait`` returns every submitted task's error text, None for success."""

    name: str

    def submit(self, jobs: list[TaskJob], logs: Path, after: list[Submission]) -> Submission: ...

    def wait(self, submission: Submission) -> dict[int, str | None]: ...


def job_error(handle: Any) -> str | None:
    """None when a submitit job returned; otherwise a one-line reason for the status table."""
    try:
        handle.result()
        return None
    except Exception as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raised = [ln for ln in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt):", ln)]
        if raised:  # the task's own exception, from the remote traceback
            return raised[-1][:500]
        state = getattr(handle, "state", "UNKNOWN")
        return (
            f"{type(exc).__name__}: the task died without a result (state {state}; killed, "
            "out of memory or past its time limit?); see the log"
        )
