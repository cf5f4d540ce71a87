"""torch.distributed set-up for train_sft: one process locally, N ranks under Slurm or torchrun.

Inputs -> outputs: the process environment -> a `DistEnv` (rank, world size, local rank, device)
with the process group initialised through `deepspeed.init_distributed`.

Where the ranks come from:
- RANK/WORLD_SIZE/... already set (torchrun, or the worker's
  `heal_batch.executors.environment.prepare_task` in every rank of a multi-task job, submitit's
  or a plain `srun`): used as they are.
- Not set: a single process; RANK=0, WORLD_SIZE=1, LOCAL_RANK=0, MASTER_ADDR=127.0.0.1 and a free
  MASTER_PORT are set for the duration of the call and restored afterwards (DeepSpeed otherwise
  falls back to MPI discovery and fails without mpi4py). The 1-rank group itself stays up, so a
  second train_sft in the same process (the next PACE stage) reuses it.

The group is destroyed at interpreter exit (an atexit hook), while Python is still whole: Gloo's
worker threads otherwise outlive finalisation and abort the process ("terminate called without an
active exception", exit -6) after training has finished. If the last training call raised, the
group is left alone, since destroying it while other ranks may still be inside a collective can
hang.

    with distributed_env() as env:
        ... env.rank, env.world_size, env.device ...
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass

_DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class _Teardown:
    """Destroys the process group at exit, once, and only after a clean last use."""

    registered = False
    clean = True

    @classmethod
    def arm(cls) -> None:
        if not cls.registered:
            atexit.register(cls.run)
            cls.registered = True

    @classmethod
    def run(cls) -> None:
        import torch.distributed as dist

        if cls.clean and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    device: str  # "cpu" or "cuda:<i>"

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@contextlib.contextmanager
def distributed_env() -> Iterator[DistEnv]:
    """Initialise the process group (gloo on CPU, nccl on GPU); restore the variables it set."""
    saved = {key: os.environ.get(key) for key in _DIST_VARS}
    _export_env()
    try:
        import deepspeed

        from heal_batch.training.build_locks import clear_stale_build_locks

        clear_stale_build_locks()  # a killed op build would make init_distributed wait forever
        # A no-op when the group exists. A single-process group is kept for the life of the
        # process: DeepSpeed caches groups, so a destroyed one breaks the next engine.
        deepspeed.init_distributed(dist_init_required=True)
        _Teardown.arm()
        _Teardown.clean = False
        yield _describe()
        _Teardown.clean = True
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _export_env() -> None:
    if "RANK" in os.environ:
        return
    os.environ.update(
        RANK="0",
        WORLD_SIZE="1",
        LOCAL_RANK="0",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(free_port()),
    )


def _describe() -> DistEnv:
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = "cpu"
    if torch.cuda.is_available():
        # submitit's export() may leave one visible GPU per task: then it is cuda:0.
        index = local_rank % torch.cuda.device_count()
        torch.cuda.set_device(index)
        device = f"cuda:{index}"
    return DistEnv(dist.get_rank(), dist.get_world_size(), local_rank, device)
