"""Handing a plan's tasks to an executor and reading back what they left.

``dispatch`` is the one path for every executor: each stage's ready tasks are submitted after
the stages they read; what has ended is collected into the manifests from the receipts (a task
that died without one gets a failed receipt), and what is complete is sealed. Only
:mod:`heal_batch.pipeline.launch` calls them, under the run folder's lock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from heal_batch.pipeline.contract import Task, parse_ref
from heal_batch.pipeline.plan_text import ranges
from heal_batch.pipeline.worker import TaskJob
from heal_batch.store.layout import Layout
from heal_batch.store.manifests import refresh, save_manifest, seal_if_complete
from heal_batch.store.receipts import Receipt, read_receipts, write_receipt

READY_STATES = ("done", "submitted")

if TYPE_CHECKING:
    from heal_batch.executors import Executor, Submission
    from heal_batch.pipeline.launch import LaunchResult, StagePlan


def mark_stale(p: StagePlan, receipts: dict[int, Receipt] | None = None, since: str = "") -> None:
    """Stale tasks (done, but an input is rebuilt) count as missing until a receipt written
    after ``since`` (the submission) says otherwise; the manifest is then not sealed."""
    for index, reason in p.stale.items():
        receipt = (receipts or {}).get(index)
        if since and receipt is not None and receipt.finished_at >= since:
            continue
        entry = p.manifest.tasks[index]
        if entry.state == "done":
            entry.state, entry.output, entry.error = "missing", None, reason
            p.manifest.sealed, p.manifest.sealed_at = False, None


def dispatch(layout: Layout, result: LaunchResult, executor: Executor, wait: bool, echo) -> None:
    """Hand every stage with work to the executor, in DAG order, each after what it reads.

    A task is held back when an upstream task it reads is neither done nor submitted in this
    launch (it failed). An executor that runs tasks inside ``submit`` (debug, local) has them
    collected at once, so the next stage sees their outcome; a queueing one (Slurm) gets each
    array ``after`` the arrays it reads, and is collected at the end when ``wait``.
    """
    by_name = {p.name: p for p in result.plans}
    queued: dict[str, Submission] = {}
    started = _now()
    for p in result.plans:
        ready = [t for t in p.todo if _ready(by_name, t)]
        if blocked := [t.index for t in p.todo if t not in ready]:
            result.blocked[p.name] = blocked
            echo(f"{p.name}: holding back tasks {ranges(blocked)}: their upstream tasks failed")
        if not ready:
            continue
        after = [queued[u] for u in p.stage.upstream if u in queued]
        submission = executor.submit(
            _jobs(layout, by_name, p, ready), layout.logs(p.name, p.key), after
        )
        result.submitted[p.name] = [t.index for t in ready]
        if submission.finished:
            _settle(layout, p, result, executor.wait(submission), submission, started, echo)
            continue
        queued[p.name] = submission
        for index, job_id in submission.job_ids.items():
            entry = p.manifest.tasks[index]
            entry.state, entry.job_id = "submitted", job_id
            entry.log_path = submission.log_paths.get(index)
        save_manifest(layout, p.manifest)
        after_text = f" after {', '.join(j for s in after for j in s.array_ids)}" if after else ""
        echo(
            f"{p.name}: submitted {len(ready)} task(s) as job(s) "
            f"{', '.join(submission.array_ids)}{after_text}"
        )
    if queued and not wait:
        echo(f"submitted; follow with: heal-batch status --workdir {layout.workdir}")
        return
    for name, submission in queued.items():
        _settle(layout, by_name[name], result, executor.wait(submission), submission, started, echo)


def _settle(
    layout: Layout,
    p: StagePlan,
    result: LaunchResult,
    errors: dict[int, str | None],
    submission: Submission,
    started: str,
    echo,
) -> None:
    """Collect a submission's outcome into the manifest, seal it if complete, and say so."""
    _collect(layout, p, submission, errors, started)
    if failed := p.manifest.by_state("failed"):
        result.failed[p.name] = failed
    sealed = seal_if_complete(layout, p.manifest)
    save_manifest(layout, p.manifest)
    echo(
        f"{p.name}: {len(p.manifest.by_state('done'))}/{len(p.tasks)} done"
        + (f", failed {ranges(failed)}" if failed else "")
        + (", sealed" if sealed else "")
    )


def _collect(
    layout: Layout, p: StagePlan, submission, errors: dict[int, str | None], started: str
) -> None:
    """Refresh from receipts; a task that died without one (SIGKILL, OOM) gets one from here."""
    receipts = read_receipts(layout, p.name, p.key)
    for index, error in errors.items():
        receipt = receipts.get(index)
        if error and (receipt is None or receipt.finished_at < started):
            write_receipt(
                layout,
                Receipt(
                    stage=p.name,
                    run_key=p.key,
                    index=index,
                    state="failed",
                    attempt=(receipt.attempt + 1) if receipt else 1,
                    error=error,
                    job_id=submission.job_ids.get(index),
                    log_path=submission.log_paths.get(index),
                ),
            )
    for index, job_id in submission.job_ids.items():
        p.manifest.tasks[index].job_id = job_id
        p.manifest.tasks[index].log_path = submission.log_paths.get(index)
    mark_stale(p, refresh(layout, p.manifest), since=started)


def _jobs(layout: Layout, by_name: dict[str, StagePlan], p: StagePlan, tasks: list[Task]):
    upstream = {u: by_name[u].key for u in p.stage.upstream}
    return [TaskJob(str(layout.workdir), p.stage, p.key, upstream, t) for t in tasks]


def _ready(by_name: dict[str, StagePlan], task: Task) -> bool:
    """Every upstream task the task reads is done, or submitted in this launch."""
    for value in task.inputs:
        parsed = parse_ref(value)
        if parsed and by_name[parsed[0]].manifest.tasks[parsed[1]].state not in READY_STATES:
            return False
    return True


def _now() -> str:
    return datetime.now(UTC).isoformat()
