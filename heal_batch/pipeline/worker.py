"""What runs inside one array element: resolve inputs, run the stage, publish, write the receipt.

Everything here is importable (submitit pickles :class:`TaskRunner` by reference), and the
runner is ``Checkpointable``: a Slurm time-out or preemption requeues the same task, which
resumes from whatever progress the stage saved in its scratch folder.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heal_batch.pipeline import failpoints
from heal_batch.pipeline.contract import Task, TaskIO, parse_ref
from heal_batch.store.layout import Layout
from heal_batch.store.receipts import Receipt, read_receipts, receipt_problem, write_receipt


class UpstreamNotReady(RuntimeError):
    """An input refers to an upstream task without a good receipt."""


@dataclass(frozen=True)
class TaskJob:
    """Everything one array element needs; small and picklable."""

    workdir: str
    stage: Any
    run_key: str
    upstream_keys: dict[str, str]
    task: Task
    threads: int | None = None  # CPU threads for torch when tasks share a machine (local executor)


def resolve_inputs(layout: Layout, job: TaskJob) -> tuple[str, ...]:
    """Replace ``@stage/i`` references by the output addresses in the upstream receipts."""
    resolved, cache = [], {}
    for value in job.task.inputs:
        parsed = parse_ref(value)
        if parsed is None:
            resolved.append(value)
            continue
        stage, index = parsed
        key = job.upstream_keys[stage]
        if stage not in cache:
            cache[stage] = read_receipts(layout, stage, key)
        receipt = cache[stage].get(index)
        problem = receipt_problem(layout, receipt)
        if problem is not None:
            raise UpstreamNotReady(f"input {value} (run {key[:12]}) is not ready: {problem}")
        resolved.append(receipt.output)
    return tuple(resolved)


def execute(job: TaskJob) -> dict[str, Any]:
    """Run one task and write its receipt; re-raises the task's exception after recording it."""
    layout = Layout(Path(job.workdir))
    name, index = job.task.stage, job.task.index
    previous = read_receipts(layout, name, job.run_key).get(index)
    base = Receipt(
        stage=name, run_key=job.run_key, index=index, state="failed",
        attempt=(previous.attempt + 1) if previous else 1, log_path=_log_path(), **_slurm_ids(),
    )
    io = TaskIO(layout, name, job.run_key, index)
    start = time.time()
    try:
        failpoints.hit(name, index, "before-run")
        inputs = resolve_inputs(layout, job)
        base.inputs = list(inputs)
        counters = job.stage.run(dataclasses.replace(job.task, inputs=inputs), io)
        address, count = io.close()
        failpoints.hit(name, index, "after-shard")
    except BaseException as exc:
        io.abort()
        base.seconds = round(time.time() - start, 3)
        base.error = f"{type(exc).__name__}: {exc}"
        if _is_rank_zero():
            write_receipt(layout, base)
        raise
    done = dataclasses.replace(
        base, state="done", output=address, records=count,
        counters=dict(counters), seconds=round(time.time() - start, 3),
    )
    if _is_rank_zero():
        write_receipt(layout, done)
    return done.to_dict()


def _log_path() -> str | None:
    try:
        import submitit

        return str(submitit.JobEnvironment().paths.stderr)
    except (ImportError, RuntimeError, KeyError):
        return None


def _slurm_ids() -> dict[str, str | None]:
    env = os.environ
    return {
        "job_id": env.get("SLURM_JOB_ID") or env.get("SUBMITIT_LOCAL_JOB_ID"),
        "array_job_id": env.get("SLURM_ARRAY_JOB_ID"),
        "array_task_id": env.get("SLURM_ARRAY_TASK_ID"),
    }


def _is_rank_zero() -> bool:
    return os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")) == "0"


try:
    from submitit.helpers import Checkpointable as _Checkpointable
except ImportError:  # pragma: no cover - submitit is a core dependency
    _Checkpointable = object


class TaskRunner(_Checkpointable):
    """The callable submitit runs; requeued as is on time-out or preemption.

    In a multi-task Slurm job (a ``distributed`` stage such as training on nodes x GPUs) every
    rank runs this; the torch.distributed variables are exported first, and only rank 0 writes
    the shard's receipt.
    """

    def __call__(self, job: TaskJob) -> dict[str, Any]:
        _limit_cpu_threads(job.threads)
        _export_distributed_env()
        return execute(job)


def _limit_cpu_threads(threads: int | None = None) -> None:
    """Give torch/OpenMP as many threads as this task has CPUs, not as many as the node has.

    Without cgroups (the local cluster, many small sites) every task sees all cores; two tasks with
    a thread per core each oversubscribe them, and OpenMP's busy-waiting then made a 1.5-minute
    repair task take 25 minutes. The count comes from Slurm (SLURM_CPUS_PER_TASK) or from the local
    executor (``threads``: its share of the cores); an OMP_NUM_THREADS the user set wins.
    """
    count = os.environ.get("SLURM_CPUS_PER_TASK") or (str(threads) if threads else None)
    if not count or not count.isdigit() or "OMP_NUM_THREADS" in os.environ:
        return
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = count
    torch = sys.modules.get("torch")  # already imported: tell it too
    if torch is not None:
        torch.set_num_threads(int(count))


def _export_distributed_env() -> None:
    try:
        import submitit

        env = submitit.JobEnvironment()
    except (ImportError, RuntimeError, KeyError):
        return
    if env.num_tasks > 1:
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
