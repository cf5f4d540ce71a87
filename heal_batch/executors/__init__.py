"""Executors: debug (in-process), local (subprocesses) and slurm (array jobs), behind one interface.

``submit`` hands a stage's task jobs to the executor and returns a :class:`Submission`;
``wait`` blocks until they end and returns, per task index, the error text of tasks that failed
(None for success). Only the launcher calls these; stages never see a scheduler.

    executor = make_executor("local", parallelism=2)
    submission = executor.submit(jobs, logs_dir, after=[])
    errors = executor.wait(submission)
"""

from __future__ import annotations

from heal_batch.executors.base import (
    CancelOutcome,
    Executor,
    JobControl,
    JobState,
    Submission,
    job_error,
)

__all__ = [
    "CancelOutcome",
    "Executor",
    "JobControl",
    "JobState",
    "Submission",
    "job_control",
    "job_error",
    "make_executor",
]

EXECUTORS = ("debug", "local", "slurm")


def make_executor(
    name: str, *, parallelism: int = 1, timeout_min: int = 24 * 60, cluster: str | None = None
) -> Executor:
    """The executor called ``name``.

    ``cluster`` names a Slurm profile (slurm/profiles/<name>.yaml)."""
    if name == "debug":
        from heal_batch.executors.debug import DebugExecutor

        return DebugExecutor()
    if name == "local":
        from heal_batch.executors.local import LocalExecutor

        return LocalExecutor(parallelism, timeout_min)
    if name == "slurm":
        from heal_batch.executors.slurm.executor import SlurmExecutor
        from heal_batch.executors.slurm.profiles import load_profile

        return SlurmExecutor(load_profile(cluster or "local"))
    raise ValueError(f"unknown executor {name!r}; valid: {', '.join(EXECUTORS)}")


def job_control(name: str) -> JobControl:
    """How to ask about (and cancel) the jobs a run of executor ``name`` submitted; ``name`` is
    what the stage's manifest recorded. Unknown names (a hand-edited manifest) get the debug
    executor's answer: nothing known, nothing to cancel."""
    if name == "slurm":
        from heal_batch.executors.slurm.cancel import SlurmJobs

        return SlurmJobs()
    if name == "local":
        from heal_batch.executors.local_procs import LocalJobs

        return LocalJobs()
    from heal_batch.executors.local_procs import InProcessJobs

    return InProcessJobs()
