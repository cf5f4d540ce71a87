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

from heal_batch.executors.environment import TaskEnv, prepare_task
from heal_batch.pipeline import failpoints
from heal_batch.pipeline.contract import Stage, Task, TaskIO, parse_ref
from heal_batch.store.layout import Layout
from heal_batch.store.markers import clear_start_marker, write_start_marker
from heal_batch.store.receipts import Receipt, read_receipts, receipt_problem, write_receipt


class UpstreamNotReady(RuntimeError):
    """An input refers to an upstream task without a good receipt."""


@dataclass(frozen=True)
class TaskJob:
    """Everything one array element needs; small and picklable."""

    workdir: str
    stage: Stage
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


def execute(job: TaskJob, env: TaskEnv | None = None) -> dict[str, Any]:
    """Run one task and write its receipt; re-raises the task's exception after recording it.

    ``env`` describes this process (rank, world size, job ids); only rank 0 writes the receipt.
    """
    env = env or TaskEnv()
    layout = Layout(Path(job.workdir))
    name, index = job.task.stage, job.task.index
    previous = read_receipts(layout, name, job.run_key).get(index)
    base = Receipt(
        stage=name,
        run_key=job.run_key,
        index=index,
        state="failed",
        attempt=(previous.attempt + 1) if previous else 1,
        log_path=env.log_path,
        job_id=env.job_id,
        array_job_id=env.array_job_id,
        array_task_id=env.array_task_id,
    )
    io = TaskIO(layout, name, job.run_key, index, rank=env.rank, world_size=env.world_size)
    if env.is_main:  # host and pid, so a launcher does not start this task again beside it
        write_start_marker(layout, name, job.run_key, index, env.log_path)
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
        if _requeued(exc):
            raise  # not over: the same task runs again in its next allocation
        base.seconds = round(time.time() - start, 3)
        base.error = _error_text(exc)
        if env.is_main:
            write_receipt(layout, dataclasses.replace(base, **compute_used()))
            clear_start_marker(layout, name, job.run_key, index)
        raise
    done = dataclasses.replace(
        base,
        state="done",
        output=address,
        records=count,
        counters=dict(counters),
        seconds=round(time.time() - start, 3),
        **compute_used(),
    )
    if env.is_main:
        write_receipt(layout, done)
        clear_start_marker(layout, name, job.run_key, index)
    return done.to_dict()


def compute_used() -> dict[str, Any]:
    """The receipt's ``threads`` (torch's intra-op threads, else OMP_NUM_THREADS) and ``device``
    (``cpu``, or the GPUs this process saw): what a shard's exact floats can depend on."""
    torch = sys.modules.get("torch")  # a stage that never imported torch used none of it
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if torch is None:
        return {"threads": int(omp) if omp.isdigit() else None, "device": "cpu"}
    gpus = torch.cuda.device_count()
    name = torch.cuda.get_device_name() if torch.cuda.is_initialized() else "cuda"
    return {"threads": torch.get_num_threads(), "device": f"{gpus} x {name}" if gpus else "cpu"}


def _requeued(exc: BaseException) -> bool:
    """submitit's signal handler (time limit, preemption) requeued this task and exits it."""
    tb = exc.__traceback__ if isinstance(exc, SystemExit) else None
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "checkpoint_and_try_requeue":
            return True
        tb = tb.tb_next
    return False


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if "timed-out too many times" in text:  # submitit, past the profile's max_requeues
        return (
            "time limit: the task reached its Slurm time limit once more than max_requeues "
            f"allows; raise the profile's time_min or max_requeues ({text})"
        )
    return text


try:
    from submitit.helpers import Checkpointable as _Checkpointable
except ImportError:  # pragma: no cover - submitit is a core dependency
    _Checkpointable = object


class TaskRunner(_Checkpointable):
    """The callable submitit runs; requeued as is on time-out or preemption.

    In a multi-task job (a ``distributed`` stage such as training on nodes x GPUs) every rank
    runs this; ``prepare_task`` exports the torch.distributed variables first, and only rank 0
    writes the shard's receipt.
    """

    def __call__(self, job: TaskJob) -> dict[str, Any]:
        return execute(job, prepare_task(job.threads))
