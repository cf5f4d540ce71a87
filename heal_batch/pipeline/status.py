"""``heal-batch status``: per stage, how many tasks are done, running, pending, failed, missing.

Reads ``refs/`` (the run each stage's current config points at), its manifest and receipts, and
writes nothing: unfinished manifests are refreshed from the receipts in memory (the next
``heal-batch run`` seals them). Submitted tasks that have no receipt yet are classified by the
executor that holds them (``heal_batch.executors.job_control``; on Slurm one ``sacct`` call:
pending, running, or failed with Slurm's reason, e.g. TIMEOUT or OUT_OF_MEMORY). For a stage still
running, the progress files of its unfinished tasks (``heal_batch.pipeline.progress``) give its
tokens/s and an ETA: the units left over the summed rate of the tasks so far. A damaged receipt
counts its task as missing and is listed with its path; a bad ref or a damaged manifest is listed
on its stage's row, and the other stages are still shown. Imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from heal_batch.executors import job_control
from heal_batch.pipeline import progress
from heal_batch.pipeline.registry import STAGES
from heal_batch.store.layout import Layout
from heal_batch.store.manifests import read_manifest, refresh
from heal_batch.store.names import RunFolderError


@dataclass
class TaskProblem:
    index: int
    reason: str
    log_path: str | None


@dataclass
class StageStatus:
    """One stage's current run. ``sealed``: every task is done (the manifest is sealed, or the
    next run seals it). ``failures``: failed tasks, and missing ones with a reason (a damaged
    receipt, a lost shard). ``problem``: why the stage could not be read (bad ref, damaged
    manifest), counts then empty."""

    stage: str
    run_key: str
    manifest: str
    sealed: bool
    counts: dict[str, int]
    failures: list[TaskProblem] = field(default_factory=list)
    problem: str | None = None
    tokens_per_s: float | None = None  # running tasks' attempts so far (progress files)
    eta_s: float | None = None  # units left / units per second of the running tasks


def collect(workdir: Path) -> list[StageStatus]:
    """Every stage with a current run, in DAG order; reads the run folder, writes nothing."""
    layout = Layout(workdir)
    rows = []
    for name in STAGES:
        try:
            row = _stage_status(layout, name)
        except RunFolderError as exc:
            row = StageStatus(
                name, "?", str(layout.ref(name)), False, dict.fromkeys(_COUNTS, 0), problem=str(exc)
            )
        if row is not None:
            rows.append(row)
    return rows


_COUNTS = ("done", "running", "pending", "failed", "missing")


def _stage_status(layout: Layout, name: str) -> StageStatus | None:
    key = layout.read_ref(name)
    manifest = read_manifest(layout, name, key) if key else None
    if manifest is None:
        return None
    if not manifest.sealed:
        refresh(layout, manifest)  # in memory only
    states = {t.index: t.state for t in manifest.tasks}
    submitted = {t.index: t.job_id for t in manifest.tasks if t.state == "submitted" and t.job_id}
    failures = [
        TaskProblem(t.index, t.error or "failed", t.log_path)
        for t in manifest.tasks
        if t.state == "failed" or (t.state == "missing" and t.error)
    ]
    for index, job in job_control(manifest.executor).states(submitted).items():
        states[index] = job.state
        if job.state == "failed":
            failures.append(TaskProblem(index, job.reason, manifest.tasks[index].log_path))
    counts = dict.fromkeys(_COUNTS, 0)
    for state in states.values():
        counts["pending" if state == "submitted" else state] += 1
    complete = manifest.sealed or counts["done"] == len(manifest.tasks)
    unfinished = [i for i, state in states.items() if state not in ("done", "failed")]
    rate, eta = (None, None) if complete else throughput(layout, name, key, unfinished)
    return StageStatus(
        name,
        key,
        str(layout.manifest(name, key)),
        complete,
        counts,
        sorted(failures, key=lambda f: f.index),
        tokens_per_s=rate,
        eta_s=eta,
    )


def throughput(
    layout: Layout, stage: str, key: str, unfinished: list[int], now: float | None = None
) -> tuple[float | None, float | None]:
    """(tokens/s, ETA seconds) of a running stage from its unfinished tasks' progress files;
    a task without a report counts as the mean reported task size. None where unknown."""
    reports = [rep for i in unfinished if (rep := progress.read(layout.scratch(stage, key, i)))]
    rated = [r for rep in reports if (r := progress.rates(rep, now))]
    if not rated:
        return None, None
    left = sum(max(int(rep["total"]) - int(rep["done"]), 0) for rep in reports)
    mean_total = sum(int(rep["total"]) for rep in reports) / len(reports)
    left += mean_total * (len(unfinished) - len(reports))
    units_per_s = sum(units for units, _ in rated)
    tokens_per_s = sum(tokens for _, tokens in rated)
    return (tokens_per_s or None), left / units_per_s


def render(rows: list[StageStatus]) -> str:
    """The status table, then per stage its problem or failed tasks (reason, log) and the rerun
    command."""
    if not rows:
        return "no stage runs found (is --workdir right? run `heal-batch run` first)"
    head = (
        f"{'stage':<17}{'run':<14}{'done':>6}{'running':>9}{'pending':>9}{'failed':>8}"
        f"{'missing':>9}  sealed"
    )
    lines = [head]
    for r in rows:
        c = r.counts
        if r.problem:
            lines.append(f"{r.stage:<17}{'?':<14}  cannot be read (see below)")
            continue
        lines.append(
            f"{r.stage:<17}{r.run_key[:12]:<14}{c['done']:>6}{c['running']:>9}"
            f"{c['pending']:>9}{c['failed']:>8}{c['missing']:>9}  "
            + ("yes" if r.sealed else "no")
            + _speed(r)
        )
    for r in rows:
        if r.problem:
            lines.append(f"  {r.stage}: {r.problem}")
        for f in r.failures:
            lines.append(f"  {r.stage} task {f.index}: {f.reason}")
            if f.log_path:
                lines.append(f"      log: {f.log_path}")
        if r.failures:
            lines.append(f"  rerun with: heal-batch rerun {r.manifest}")
    return "\n".join(lines)


def _speed(row: StageStatus) -> str:
    parts = [f"{row.tokens_per_s:,.0f} tok/s"] if row.tokens_per_s else []
    if row.eta_s is not None:
        parts.append(f"ETA {_duration(row.eta_s)}")
    return ("  " + ", ".join(parts)) if parts else ""


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{max(minutes, 1)}m"


def as_json(rows: list[StageStatus]) -> list[dict]:
    return [asdict(r) for r in rows]
