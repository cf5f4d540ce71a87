"""``heal-batch cancel``: stop a run folder's queued and running tasks.

For every stage with a current run (``refs/<stage>``), the executor its manifest records is
asked to cancel the unfinished tasks (``heal_batch.executors.job_control``): on Slurm their job
ids are ``scancel``-ed; a local run's live task processes (found by their log folders) are
stopped, their ``heal-batch run`` launcher first; debug tasks run inside the ``heal-batch``
process itself, so there is nothing to signal from here.

Nothing is written: cancelled tasks keep no receipt (or a failed one), ``status`` shows them,
and the next ``heal-batch run`` resubmits them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from heal_batch.executors import job_control
from heal_batch.pipeline.registry import STAGES
from heal_batch.store.layout import Layout
from heal_batch.store.manifests import load_manifest, refresh


@dataclass
class StageCancel:
    """One stage run: the jobs or pids cancelled, those already finished, and a note."""

    stage: str
    run_key: str
    executor: str
    unfinished: int
    cancelled: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    note: str | None = None


def cancel_run(workdir: Path, stages: list[str] | None = None) -> list[StageCancel]:
    """Cancel the unfinished tasks of the current run of each stage (default: every stage)."""
    unknown = sorted(set(stages or ()) - set(STAGES))
    if unknown:
        raise ValueError(
            f"--stages: unknown stage(s) {', '.join(unknown)}; valid stages: {', '.join(STAGES)}"
        )
    layout = Layout(workdir)
    rows = []
    for name in STAGES:
        key = layout.read_ref(name)
        if (stages and name not in stages) or key is None:
            continue
        if not layout.manifest(name, key).is_file():
            continue
        manifest = load_manifest(layout.manifest(name, key))
        refresh(layout, manifest)
        open_tasks = [t for t in manifest.tasks if t.state != "done"]
        row = StageCancel(name, key, manifest.executor, len(open_tasks))
        if not open_tasks:
            row.note = "complete"
        else:
            jobs = job_control(manifest.executor)
            outcome = jobs.cancel(
                {t.job_id for t in open_tasks if t.job_id}, layout.logs(name, key)
            )
            row.cancelled, row.finished, row.note = (
                outcome.cancelled,
                outcome.finished,
                outcome.note,
            )
        rows.append(row)
    return rows


def render(rows: list[StageCancel], workdir: Path) -> str:
    if not rows:
        return f"no stage runs found in {workdir} (is --workdir right? `heal-batch run` first)"
    lines = []
    for r in rows:
        head = f"{r.stage:<17}run {r.run_key[:12]}  {r.executor:<6} {r.unfinished} unfinished"
        if r.cancelled:
            head += f"; cancelled {', '.join(r.cancelled)}"
        if r.finished:
            head += f"; already ended: {', '.join(r.finished)}"
        lines.append(head + (f"  ({r.note})" if r.note else ""))
    if any(r.cancelled for r in rows):
        lines.append(
            f"follow with `heal-batch status --workdir {workdir}`; "
            "`heal-batch run` with the same config resubmits the cancelled tasks"
        )
    return "\n".join(lines)
