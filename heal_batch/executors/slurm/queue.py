"""What Slurm says about submitted jobs: ``sacct`` for states, ``squeue`` for what it still holds.

    held_jobs({"123_0", "123_1"})            # ids Slurm still holds (pending, running, completing)
    job_states({0: "123_0", 1: "123_1"})     # {1: JobState("failed", "Slurm: TIMEOUT: time ...")}

Both return nothing (rather than raise) when the command is missing or fails: callers treat an
unknown state as "no news" and fall back on receipts.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping

from heal_batch.executors.base import JobState

ACTIVE = {
    "PENDING": "pending",
    "RUNNING": "running",
    "REQUEUED": "pending",
    "CONFIGURING": "pending",
    "COMPLETING": "running",
    "SUSPENDED": "pending",
}
# What a final Slurm state means for the task, in words (the state name stays in front).
REASONS = {
    "TIMEOUT": "time limit reached (raise the profile's time_min or max_requeues)",
    "OUT_OF_MEMORY": "out of memory (raise the profile's mem_gb)",
    "NODE_FAIL": "its node failed",
    "PREEMPTED": "preempted and not requeued",
}


def job_states(submitted: Mapping[int, str]) -> dict[int, JobState]:
    """Task index → state of its Slurm job, from one ``sacct`` call; jobs that completed (their
    receipt says how) or that sacct does not list yet are left out."""
    if not submitted or shutil.which("sacct") is None:
        return {}
    ids = ",".join(sorted(set(submitted.values())))
    out = _run(["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", ids], check=True)
    by_job = {}
    for line in out.splitlines():
        job_id, _, state = line.partition("|")
        by_job[job_id.strip()] = state.split()[0] if state.strip() else "UNKNOWN"
    states = {}
    for index, job_id in submitted.items():
        state = by_job.get(job_id)
        if state is None or state == "COMPLETED":
            continue  # finished but receipt not read yet, or sacct lagging
        words = f"{state}: {REASONS[state]}" if state in REASONS else state
        states[index] = JobState(ACTIVE.get(state, "failed"), f"Slurm: {words}")
    return states


def held_jobs(job_ids: set[str]) -> set[str]:
    """The ids among ``job_ids`` (``123`` or array elements ``123_4``) that Slurm still holds
    (pending, running, completing), from ``squeue``, which knows a job the moment it is submitted
    (``sacct`` can lag behind). Empty when squeue is missing or fails."""
    if not job_ids or shutil.which("squeue") is None:
        return set()
    bases = ",".join(sorted({j.split("_")[0] for j in job_ids}))
    out = _run(["squeue", "-h", "-r", "-o", "%i", "-j", bases], check=False)
    listed = {line.strip() for line in out.splitlines() if line.strip()}
    return {j for j in job_ids if j in listed}


def _run(argv: list[str], check: bool) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=20, check=check).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
