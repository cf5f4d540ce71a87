"""The debug executor: every task in this process, one after the other (pdb works)."""

from __future__ import annotations

from pathlib import Path

from heal_batch.executors.base import Submission
from heal_batch.pipeline.worker import TaskJob, TaskRunner


class DebugExecutor:
    name = "debug"
    detached = False

    def unavailable(self) -> str | None:
        return None

    def preview(self, stage: str) -> list[str]:
        return []

    def submit(self, jobs: list[TaskJob], logs: Path, after: list[Submission]) -> Submission:
        submission = Submission(jobs[0].task.stage if jobs else "")
        for job in jobs:
            index = job.task.index
            submission.job_ids[index] = f"debug-{index}"
            try:
                TaskRunner()(job)
                submission.errors[index] = None
            except Exception as exc:  # noqa: BLE001 - recorded in the receipt; the run goes on
                submission.errors[index] = f"{type(exc).__name__}: {exc}"
        return submission

    def wait(self, submission: Submission) -> dict[int, str | None]:
        return submission.errors
