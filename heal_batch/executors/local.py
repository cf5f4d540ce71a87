"""The local executor: each task a subprocess (through submitit), at most ``parallelism`` at once.

Tasks side by side share the machine's cores: each gets ``cpu_count // parallelism`` threads
(handed to the worker on the job, never through the launcher's environment).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import threading
import time
from pathlib import Path

from heal_batch.executors.base import Submission, job_error
from heal_batch.pipeline.progress import StageBar
from heal_batch.pipeline.worker import TaskJob, TaskRunner
from heal_batch.store.layout import Layout


class LocalExecutor:
    """Runs each task as a subprocess through submitit, at most ``parallelism`` at a time."""

    name = "local"
    detached = False

    def __init__(
        self, parallelism: int = 1, timeout_min: int = 24 * 60, show_progress: bool = True
    ):
        self.parallelism, self.timeout_min = max(1, parallelism), timeout_min
        self.show_progress = show_progress

    def unavailable(self) -> str | None:
        return None

    def preview(self, stage: str) -> list[str]:
        return []

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
                        submission.errors[index] = job_error(handle)
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
    """The task's scratch folder, where it reports its progress (heal_batch.pipeline.progress)."""
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
