"""What a Slurm task learns from its environment: job ids, CPUs, and the ranks of a multi-task step.

The only module that reads ``SLURM_*`` variables. ``heal_batch.executors.environment`` turns
them into plain values for the worker, which hands them to stages.

    slurm_cpus()          # 4 under --cpus-per-task=4, None outside Slurm
    slurm_memory_bytes()  # 16 GiB under --mem=16G (or --mem-per-cpu=4G with 4 CPUs), else None
    torch_rank_vars()     # RANK/WORLD_SIZE/... of this task in a multi-task step, else None
"""

from __future__ import annotations

import os
import random


def slurm_job_ids() -> dict[str, str | None]:
    """The job id and, in an array, the array job id and this element's index (None outside)."""
    env = os.environ
    return {
        "job_id": env.get("SLURM_JOB_ID"),
        "array_job_id": env.get("SLURM_ARRAY_JOB_ID"),
        "array_task_id": env.get("SLURM_ARRAY_TASK_ID"),
    }


def slurm_cpus() -> int | None:
    """CPUs Slurm gave this task (``--cpus-per-task``), None when unset or not a number."""
    count = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return int(count) if count.isdigit() else None


def slurm_memory_bytes() -> int | None:
    """Memory Slurm gave this task in bytes: ``--mem`` (SLURM_MEM_PER_NODE, MB), else
    ``--mem-per-cpu`` (SLURM_MEM_PER_CPU, MB) times its CPUs; None outside Slurm, when unset, or
    for ``--mem=0`` (the whole node: the caller measures what is free)."""
    env = os.environ
    per_node = env.get("SLURM_MEM_PER_NODE", "")
    if per_node.isdigit():
        return int(per_node) << 20 if int(per_node) > 0 else None
    per_cpu = env.get("SLURM_MEM_PER_CPU", "")
    if per_cpu.isdigit() and int(per_cpu) > 0:
        return (int(per_cpu) << 20) * (slurm_cpus() or 1)
    return None


def torch_rank_vars() -> dict[str, str] | None:
    """torch.distributed variables of this task in a Slurm step with several tasks, else None.

    What submitit's ``TorchDistributedEnvironment().export()`` sets, also under a plain ``srun``
    (submitit's JobEnvironment only activates inside submitit jobs; its Slurm class reads the
    same variables). Every task derives the same port from the job id.
    """
    if int(os.environ.get("SLURM_NTASKS", "1")) <= 1 or "SLURM_PROCID" not in os.environ:
        return None
    from submitit.slurm.slurm import SlurmJobEnvironment

    job = SlurmJobEnvironment()
    port = os.environ.get("MASTER_PORT") or str(random.Random(job.job_id).randint(20000, 60000))
    return {
        "MASTER_ADDR": job.hostnames[0],
        "MASTER_PORT": port,
        "RANK": str(job.global_rank),
        "WORLD_SIZE": str(job.num_tasks),
        "LOCAL_RANK": str(job.local_rank),
        "LOCAL_WORLD_SIZE": str(job.num_tasks // job.num_nodes),
    }
