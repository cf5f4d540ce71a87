"""Cancel Slurm jobs: the one place ``scancel`` is called.

outcome = cancel_jobs({"1234_0", "1234_1", "1235"})
outcome.cancelled   # ids Slurm still held (pending or running) and was told to cancel
outcome.finished    # ids Slurm no longer holds (already ended): nothing to do
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable

from heal_batch.executors.base import CancelOutcome
from heal_batch.executors.slurm.queue import held_jobs


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
