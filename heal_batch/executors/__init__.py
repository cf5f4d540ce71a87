"""Executors: debug (in-process), local (subprocesses) and slurm (array jobs), behind one interface.

``submit`` hands a stage's task jobs to the executor and returns a :class:`Submission`;
``wait`` blocks until they end and returns, per task index, the error text of tasks that failed
(None for success). Only the launcher calls these; stages never see a scheduler.

    executor = make_executor("local", parallelism=2)
    submission = executor.submit(jobs, logs_dir, after=[])
    errors = executor.wait(submission)
"""

from __future__ import annotations

from heal_batch.executors.base import Executor, Submission, job_error

__all__ = ["Executor", "Submission", "job_error", "make_executor"]

EXECUTORS = ("debug", "local", "slurm")


def make_executor(name: str, *, parallelism: int = 1, timeout_min: int = 24 * 60, cluster: str | None = None) -> Executor:
    """The executor called ``name``; ``cluster`` names a Slurm profile (slurm/profiles/<name>.yaml)."""
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
