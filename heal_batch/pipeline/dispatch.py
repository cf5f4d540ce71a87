"""Handing a plan's tasks to an executor and reading back what they left.

``run_stage_now`` (debug, local) runs one stage's ready tasks and waits; ``submit_dag`` (Slurm)
submits every stage at once, each array after the arrays it reads. Both refresh the manifests
from the receipts afterwards, write a failed receipt for a task that died without one, and seal
what is complete. Only :mod:`heal_batch.pipeline.launch` calls them, under the run folder's lock.
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

if TYPE_CHECKING:
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


def run_stage_now(layout: Layout, p: StagePlan, result: LaunchResult, executor, echo) -> None:
    """Run the stage's tasks whose inputs are done; hold back the others."""
    by_name = {q.name: q for q in result.plans}
    ready = [t for t in p.todo if _ready(by_name, t)]
    blocked = [t.index for t in p.todo if t not in ready]
    if blocked:
        result.blocked[p.name] = blocked
        echo(f"{p.name}: holding back tasks {ranges(blocked)}: their upstream tasks failed")
    if not ready:
        return
    started = _now()
    submission = executor.submit(_jobs(layout, by_name, p, ready), layout.logs(p.name, p.key), [])
    result.submitted[p.name] = [t.index for t in ready]
    _collect(layout, p, submission, executor.wait(submission), started)
    failed = p.manifest.by_state("failed")
    if failed:
        result.failed[p.name] = failed
    sealed = seal_if_complete(layout, p.manifest)
    save_manifest(layout, p.manifest)
    echo(f"{p.name}: {len(p.manifest.by_state('done'))}/{len(p.tasks)} done"
         + (f", failed {ranges(failed)}" if failed else "") + (", sealed" if sealed else ""))


def submit_dag(layout: Layout, result: LaunchResult, executor, wait: bool, echo) -> None:
    """Submit every stage with work at once (``afterany`` on the arrays it reads)."""
    by_name = {p.name: p for p in result.plans}
    submissions = {}
    started = _now()
    for p in result.plans:
        if not p.todo:
            continue
        after = [submissions[u] for u in p.stage.upstream if u in submissions]
        jobs = _jobs(layout, by_name, p, p.todo)
        submission = submissions[p.name] = executor.submit(jobs, layout.logs(p.name, p.key), after)
        result.submitted[p.name] = [t.index for t in p.todo]
        for index, job_id in submission.job_ids.items():
            entry = p.manifest.tasks[index]
            entry.state, entry.job_id = "submitted", job_id
            entry.log_path = submission.log_paths.get(index)
        save_manifest(layout, p.manifest)
        jobs_text = ", ".join(submission.array_ids)
        echo(f"{p.name}: submitted {len(p.todo)} task(s) as job(s) {jobs_text}"
             + (f" after {', '.join(j for s in after for j in s.array_ids)}" if after else ""))
    if not wait:
        echo(f"submitted; follow with: heal-batch status --workdir {layout.workdir}")
        return
    for name, submission in submissions.items():
        p = by_name[name]
        _collect(layout, p, submission, executor.wait(submission), started)
        if failed := p.manifest.by_state("failed"):
            result.failed[name] = failed
        seal_if_complete(layout, p.manifest)
        save_manifest(layout, p.manifest)
        echo(f"{name}: {len(p.manifest.by_state('done'))}/{len(p.tasks)} done")


def _collect(layout: Layout, p: StagePlan, submission, errors: dict[int, str | None],
             started: str) -> None:
    """Refresh from receipts; a task that died without one (SIGKILL, OOM) gets one from here."""
    receipts = read_receipts(layout, p.name, p.key)
    for index, error in errors.items():
        receipt = receipts.get(index)
        if error and (receipt is None or receipt.finished_at < started):
            write_receipt(layout, Receipt(
                stage=p.name, run_key=p.key, index=index, state="failed",
                attempt=(receipt.attempt + 1) if receipt else 1, error=error,
                job_id=submission.job_ids.get(index), log_path=submission.log_paths.get(index),
            ))  # fmt: skip
    for index, job_id in submission.job_ids.items():
        p.manifest.tasks[index].job_id = job_id
        p.manifest.tasks[index].log_path = submission.log_paths.get(index)
    mark_stale(p, refresh(layout, p.manifest), since=started)


def _jobs(layout: Layout, by_name: dict[str, StagePlan], p: StagePlan, tasks: list[Task]):
    upstream = {u: by_name[u].key for u in p.stage.upstream}
    return [TaskJob(str(layout.workdir), p.stage, p.key, upstream, t) for t in tasks]


def _ready(by_name: dict[str, StagePlan], task: Task) -> bool:
    for value in task.inputs:
        parsed = parse_ref(value)
        if parsed and by_name[parsed[0]].manifest.tasks[parsed[1]].state != "done":
            return False
    return True


def _now() -> str:
    return datetime.now(UTC).isoformat()
