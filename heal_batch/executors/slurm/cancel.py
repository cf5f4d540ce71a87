"""Cancel Slurm jobs (the one place ``scancel`` is called), and ``SlurmJobs``: what the pipeline
asks about a Slurm run's jobs (states and held jobs from queue.py, cancel from here).

outcome = cancel_jobs({"1234_0", "1234_1", "1235"})
outcome.cancelled   # ids Slurm still held (pending or running) and was told to cancel
outcome.finished    # ids Slurm no longer holds (already ended): nothing to do
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from heal_batch.executors.base import CancelOutcome, JobState
from heal_batch.executors.slurm.queue import held_jobs, job_states


class CancelError(RuntimeError):
    """scancel is missing or refused the job ids."""


def cancel_jobs(job_ids: Iterable[str]) -> CancelOutcome:
    """``scancel`` the ids among ``job_ids`` (``123`` or array elements ``123_4``) that Slurm still
    holds; the others are reported as finished. Raises :class:`CancelError` when scancel is not
    on PATH or fails, naming the ids."""
    ids = sorted({str(job_id) for job_id in job_ids if job_id})
    if not ids:
        return CancelOutcome()
    if shutil.which("scancel") is None:
        raise CancelError(
            f"scancel is not on PATH, so jobs {' '.join(ids)} cannot be cancelled from here; "
            "run `heal-batch cancel` on a login node of the cluster that holds them"
        )
    held = held_jobs(set(ids))
    outcome = CancelOutcome(sorted(held), [job for job in ids if job not in held])
    if not held:
        return outcome
    done = subprocess.run(
        ["scancel", *outcome.cancelled], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise CancelError(
            f"scancel {' '.join(outcome.cancelled)} failed (rc {done.returncode}): "
            f"{done.stderr.strip()}; check them with `squeue -j`"
        )
    return outcome


class SlurmJobs:
    """:class:`~heal_batch.executors.base.JobControl` for jobs a Slurm run submitted."""

    def states(self, submitted: Mapping[int, str]) -> dict[int, JobState]:
        return job_states(submitted)

    def held(self, job_ids: set[str]) -> set[str]:
        return held_jobs(job_ids)

    def cancel(self, job_ids: set[str], logs: Path) -> CancelOutcome:
        if not job_ids:
            return CancelOutcome(
                note="no Slurm job ids recorded for its unfinished tasks (never submitted?)"
            )
        return cancel_jobs(job_ids)
