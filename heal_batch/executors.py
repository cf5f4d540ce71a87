"""Executors: debug (in-process), local (subprocesses) and slurm (array jobs), behind one interface.

``submit`` hands a stage's task jobs to the executor and returns a :class:`Submission`;
``wait`` blocks until they end and returns, per task index, the error text of tasks that failed
(None for success). Only the launcher calls these; stages never see a scheduler.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from heal_batch.progress import StageBar
from heal_batch.worker import TaskJob, TaskRunner


@dataclass
class Submission:
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
    name: str

    def submit(self, jobs: list[TaskJob], logs: Path, after: list[Submission]) -> Submission: ...

    def wait(self, submission: Submission) -> dict[int, str | None]: ...


class DebugExecutor:
    """Runs tasks in this process, one after the other (use it with pdb)."""

    name = "debug"

    def submit(self, jobs: list[TaskJob], logs: Path, after: list[Submission]) -> Submission:
        submission = Submission(jobs[0].task.stage if jobs else "")
        for job in jobs:
            index = job.task.index
            submission.job_ids[index] = f"debug-{index}"
            try:
                TaskRunner()(job)
                submission.errors[index] = None
            except Exception as exc:  # recorded in the receipt; the run goes on
                submission.errors[index] = f"{type(exc).__name__}: {exc}"
        return submission

    def wait(self, submission: Submission) -> dict[int, str | None]:
        return submission.errors


class LocalExecutor:
    """Runs each task as a subprocess through submitit, at most ``parallelism`` at a time."""

    name = "local"

    def __init__(self, parallelism: int = 1, timeout_min: int = 24 * 60, show_progress: bool = True):
        self.parallelism, self.timeout_min = max(1, parallelism), timeout_min
        self.show_progress = show_progress

    def submit(self, jobs: list[TaskJob], logs: Path, after: list[Submission]) -> Submission:
        import submitit

        executor = submitit.LocalExecutor(folder=logs / "%j")
        executor.update_parameters(timeout_min=self.timeout_min)
        if self.parallelism > 1:  # tasks side by side share the cores (worker._limit_cpu_threads)
            threads = max(1, (os.cpu_count() or 1) // self.parallelism)
            jobs = [dataclasses.replace(job, threads=threads) for job in jobs]
        submission = Submission(jobs[0].task.stage if jobs else "")
        queue, running = list(jobs), {}
        bar = StageBar(submission.stage, len(jobs)) if self.show_progress and jobs else None
        scratch = {j.task.index: _scratch(j) for j in jobs} if bar else {}
        with _cancel_on_exit(running):
            while queue or running:
                while queue and len(running) < self.parallelism:
                    job = queue.pop(0)
                    handle = executor.submit(TaskRunner(), job)
                    running[job.task.index] = handle
                    submission.job_ids[job.task.index] = str(handle.job_id)
                    submission.log_paths[job.task.index] = str(handle.paths.stderr)
                for index, handle in list(running.items()):
                    if handle.done():
                        submission.errors[index] = _job_error(handle)
                        del running[index]
                if bar:
                    bar.update(len(submission.errors), [scratch[i] for i in running])
                time.sleep(0.2)
        if bar:
            bar.update(len(submission.errors), force=True)
            bar.close()
        return submission

    def wait(self, submission: Submission) -> dict[int, str | None]:
        return submission.errors


def _scratch(job: TaskJob) -> Path:
    """The task's scratch folder, where it reports its progress (heal_batch.progress)."""
    from heal_batch.store.layout import Layout

    return Layout(Path(job.workdir)).scratch(job.task.stage, job.run_key, job.task.index)


@contextlib.contextmanager
def _cancel_on_exit(running: dict):
    """Kill the task subprocesses still in ``running`` when the launcher is interrupted.

    Ctrl-C raises KeyboardInterrupt here; SIGTERM (``kill``, a scheduler) is turned into the same.
    Without this the subprocesses outlive ``heal-batch run`` and keep the CPU busy. The killed tasks
    leave no receipt, so the next ``run`` resubmits them (generate/repair/score resume from chunks).
    """
    previous = signal.getsignal(signal.SIGTERM)
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    except BaseException:
        for handle in running.values():
            _kill_local_job(handle)
        raise
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def _kill_local_job(handle) -> None:
    """SIGKILL a submitit local job: its controller process and the task processes under it.

    ``LocalJob.cancel`` only sends SIGINT to the controller, which does not reach the task when
    the launcher was stopped with SIGTERM; the task's pids come from /proc (Linux).
    """
    process = getattr(handle, "_process", None)
    if process is None:
        with contextlib.suppress(Exception):
            handle.cancel(check=False)
        return
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    with contextlib.suppress(OSError):
        for pid in children.read_text().split():
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)
    with contextlib.suppress(OSError):
        process.kill()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


class SlurmExecutor:
    """Submits a stage as Slurm array jobs (windows under MaxArraySize) with submitit.

    ``after`` makes the arrays wait for upstream arrays (``afterany``: a failed upstream shard
    must not strand the others; the downstream task then fails fast naming the missing input).
    """

    name = "slurm"

    def __init__(self, profile):
        self.profile = profile

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
            extra.update({"dependency": "afterany:" + ":".join(depend), "kill_on_invalid_dep": "yes"})
            params["slurm_additional_parameters"] = extra
        executor = submitit.AutoExecutor(
            folder=logs / "%j", cluster="slurm", **profile.executor_arguments()
        )
        executor.update_parameters(name=f"heal-{submission.stage}", **params)
        if getattr(jobs[0].stage, "resources", "array") == "distributed":
            # One multi-node, multi-task job per task: submitit starts the ranks (no torchrun wrapper).
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
            for job, handle in zip(chunk, handles):
                submission.handles[job.task.index] = handle
                submission.job_ids[job.task.index] = str(handle.job_id)
                submission.log_paths[job.task.index] = str(handle.paths.stderr)
        return submission

    def wait(self, submission: Submission) -> dict[int, str | None]:
        return {index: _job_error(handle) for index, handle in submission.handles.items()}


def _job_error(handle) -> str | None:
    """None when the job returned; otherwise a one-line reason for the status table."""
    try:
        handle.result()
        return None
    except Exception as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raised = [ln for ln in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt):", ln)]
        if raised:  # the task's own exception, from the remote traceback
            return raised[-1][:500]
        state = getattr(handle, "state", "UNKNOWN")
        return (f"{type(exc).__name__}: the task died without a result (state {state}; killed, "
                "out of memory or past its time limit?); see the log")


def make_executor(name: str, *, parallelism: int = 1, timeout_min: int = 24 * 60, cluster: str | None = None):
    if name == "debug":
        return DebugExecutor()
    if name == "local":
        return LocalExecutor(parallelism, timeout_min)
    if name == "slurm":
        from heal_batch.cluster_profile import load_profile

        return SlurmExecutor(load_profile(cluster or "local"))
    raise ValueError(f"unknown executor {name!r}; valid: debug, local, slurm")
