"""The Slurm executor: a stage's tasks as array jobs (windowed under MaxArraySize), by submitit."""

from __future__ import annotations

import shutil
from pathlib import Path

from heal_batch.executors.base import Submission, job_error
from heal_batch.pipeline.worker import TaskJob, TaskRunner


class SlurmExecutor:
    """Submits a stage as Slurm array jobs (windows under MaxArraySize) with submitit.

    ``after`` makes the arrays wait for upstream arrays (``afterany``: a failed upstream shard
    must not strand the others; the downstream task then fails fast naming the missing input).
    """

    name = "slurm"
    detached = True

    def __init__(self, profile):
        self.profile = profile

    def preview(self, stage: str) -> list[str]:
        profile = self.profile.for_stage(stage)
        return [*profile.sbatch_lines(), *profile.launch_lines()]

    def unavailable(self) -> str | None:
        if shutil.which("sbatch") is None:
            return (
                "`sbatch` is not on PATH here (Slurm is not installed, or this is not a login "
                "node). Run on a machine that can submit Slurm jobs, use --executor local, or "
                "write plain sbatch scripts with --sbatch_dir DIR"
            )
        return None

    def submit(self, jobs: list[TaskJob], logs: Path, after: list[Submission]) -> Submission:
        import submitit

        submission = Submission(jobs[0].task.stage if jobs else "")
        if not jobs:
            return submission
        profile = self.profile.for_stage(submission.stage)
        params = profile.submitit_parameters()
        depend = [job_id for sub in after for job_id in sub.array_ids]
        if depend:
            extra = dict(params.get("slurm_additional_parameters") or {})
            extra.update(
                {"dependency": "afterany:" + ":".join(depend), "kill_on_invalid_dep": "yes"}
            )
            params["slurm_additional_parameters"] = extra
        executor = submitit.AutoExecutor(
            folder=logs / "%j", cluster="slurm", **profile.executor_arguments()
        )
        executor.update_parameters(name=f"heal-{submission.stage}", **params)
        if jobs[0].stage.resources == "distributed":
            # One multi-node, multi-task job per task: submitit starts the ranks (no torchrun).
            for job in jobs:
                handle = executor.submit(TaskRunner(), job)
                submission.handles[job.task.index] = handle
                submission.job_ids[job.task.index] = str(handle.job_id)
                submission.log_paths[job.task.index] = str(handle.paths.stderr)
            return submission
        window = profile.max_array_size()
        for start in range(0, len(jobs), window):
            chunk = jobs[start : start + window]
            handles = executor.map_array(TaskRunner(), chunk)
            for job, handle in zip(chunk, handles, strict=True):
                submission.handles[job.task.index] = handle
                submission.job_ids[job.task.index] = str(handle.job_id)
                submission.log_paths[job.task.index] = str(handle.paths.stderr)
        return submission

    def wait(self, submission: Submission) -> dict[int, str | None]:
        return {index: job_error(handle) for index, handle in submission.handles.items()}
