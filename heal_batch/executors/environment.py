"""The scheduler-neutral view of one task's process: its ids, rank, world size and CPU threads.

``prepare_task(threads)`` runs first thing inside every task (debug, local, Slurm, plain sbatch):
it caps torch/OpenMP threads at the task's CPUs, exports the torch.distributed variables of a
multi-task job, and returns a :class:`TaskEnv` of plain values. The worker hands those to the
stage (``TaskIO.rank``, ``TaskIO.world_size``); no stage or training code reads scheduler
variables.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from heal_batch.executors.slurm import env as slurm_env
from heal_batch.pipeline.contract import TASK_MEMORY_VAR

# torch.distributed variables a job can inherit from the shell that submitted it
_INHERITED = ("WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class TaskEnv:
    rank: int = 0
    world_size: int = 1
    job_id: str | None = None
    array_job_id: str | None = None
    array_task_id: str | None = None
    log_path: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def prepare_task(threads: int | None = None) -> TaskEnv:
    """Set up this process for one task and describe it (see the module docstring)."""
    limit_cpu_threads(threads)
    export_task_memory(threads)
    _export_distributed_vars()
    ids = slurm_env.slurm_job_ids()
    ids["job_id"] = ids["job_id"] or os.environ.get("SUBMITIT_LOCAL_JOB_ID")
    return TaskEnv(
        rank=int(os.environ.get("RANK", "0")),
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
        log_path=_log_path(),
        **ids,
    )


def limit_cpu_threads(threads: int | None = None) -> None:
    """Give torch/OpenMP as many threads as this task has CPUs, not as many as the node has.

    Without cgroups (the local cluster, many small sites) every task sees all cores; two tasks with
    a thread per core each oversubscribe them, and OpenMP's busy-waiting then made a 1.5-minute
    repair task take 25 minutes. The count comes from the scheduler (Slurm's --cpus-per-task) or
    from the local executor (``threads``: its share of the cores); an OMP_NUM_THREADS the user
    set wins.
    """
    count = slurm_env.slurm_cpus() or threads
    if not count or "OMP_NUM_THREADS" in os.environ:
        return
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(count)
    torch = sys.modules.get("torch")  # already imported: tell it too
    if torch is not None:
        torch.set_num_threads(int(count))


def export_task_memory(threads: int | None = None) -> None:
    """Export the bytes this task may use (``TaskIO.memory_bytes``; a vLLM engine sizes its KV
    cache from it): Slurm's --mem, else the local executor's share (its ``threads`` out of the
    machine's cores, of the machine's memory). Left as it is when neither is known."""
    memory = slurm_env.slurm_memory_bytes()
    if memory is None and threads:
        total, cores = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), os.cpu_count()
        memory = total * min(threads, cores or threads) // (cores or threads)
    if memory:
        os.environ[TASK_MEMORY_VAR] = str(memory)


def _export_distributed_vars() -> None:
    """RANK, WORLD_SIZE, ... for every rank of a multi-task job (submitit's, or a plain srun)."""
    if "RANK" in os.environ:
        return
    try:
        import submitit

        job = submitit.JobEnvironment()
    except (ImportError, RuntimeError, KeyError):
        job = None
    if job is not None and job.num_tasks > 1:
        from submitit.helpers import TorchDistributedEnvironment

        for key in _INHERITED:  # without RANK they came from the submitting shell, not this job
            os.environ.pop(key, None)
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        return
    os.environ.update(slurm_env.torch_rank_vars() or {})


def _log_path() -> str | None:
    try:
        import submitit

        return str(submitit.JobEnvironment().paths.stderr)
    except (ImportError, RuntimeError, KeyError):
        return None
