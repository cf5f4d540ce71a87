"""``heal-batch status``: per stage, how many tasks are done, running, pending, failed, missing.

Reads ``refs/`` (the run each stage's current config points at), its manifest and receipts. Tasks
submitted to Slurm that have no receipt yet are classified with one ``sacct`` call (pending,
running, or failed with Slurm's reason, e.g. TIMEOUT or OUT_OF_MEMORY). Refreshing seals manifests
whose tasks have all finished since the launcher last looked. Imports nothing heavy.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from heal_batch.pipeline.registry import STAGES
from heal_batch.store.layout import Layout
from heal_batch.store.manifests import load_manifest, refresh, save_manifest, seal_if_complete

SLURM_ACTIVE = {"PENDING": "pending", "RUNNING": "running", "REQUEUED": "pending",
                "CONFIGURING": "pending", "COMPLETING": "running", "SUSPENDED": "pending"}


@dataclass
class TaskProblem:
    index: int
    reason: str
    log_path: str | None


@dataclass
class StageStatus:
    stage: str
    run_key: str
    manifest: str
    sealed: bool
    counts: dict[str, int]
    failures: list[TaskProblem] = field(default_factory=list)


def collect(workdir: Path) -> list[StageStatus]:
    layout = Layout(workdir)
    rows = []
    for name in STAGES:
        key = layout.read_ref(name)
        if key is None or not layout.manifest(name, key).is_file():
            continue
        manifest = load_manifest(layout.manifest(name, key))
        was_sealed = manifest.sealed
        if not was_sealed:
            refresh(layout, manifest)
            if not seal_if_complete(layout, manifest):
                save_manifest(layout, manifest)
        states = {t.index: t.state for t in manifest.tasks}
        submitted = {t.index: t.job_id for t in manifest.tasks if t.state == "submitted" and t.job_id}
        failures = [TaskProblem(t.index, t.error or "failed", t.log_path)
                    for t in manifest.tasks if t.state == "failed"]
        for index, (state, reason) in _slurm_states(submitted).items():
            states[index] = state
            if state == "failed":
                entry = manifest.tasks[index]
                failures.append(TaskProblem(index, f"Slurm: {reason}", entry.log_path))
        counts = {s: 0 for s in ("done", "running", "pending", "failed", "missing")}
        for state in states.values():
            counts["pending" if state == "submitted" else state] += 1
        rows.append(StageStatus(name, key, str(layout.manifest(name, key)), manifest.sealed, counts,
                                sorted(failures, key=lambda f: f.index)))
    return rows


def _slurm_states(submitted: dict[int, str]) -> dict[int, tuple[str, str]]:
    """task index → (pending|running|failed, Slurm state) for Slurm job ids, via one sacct call."""
    if not submitted or shutil.which("sacct") is None:
        return {}
    try:
        out = subprocess.run(
            ["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", ",".join(sorted(set(submitted.values())))],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    by_job = {}
    for line in out.splitlines():
        job_id, _, state = line.partition("|")
        by_job[job_id.strip()] = state.split()[0] if state.strip() else "UNKNOWN"
    result = {}
    for index, job_id in submitted.items():
        state = by_job.get(job_id)
        if state is None or state == "COMPLETED":
            continue  # finished but receipt not read yet, or sacct lagging
        result[index] = (SLURM_ACTIVE.get(state, "failed"), state)
    return result


def queued_jobs(job_ids: set[str]) -> set[str]:
    """The ids among ``job_ids`` (``123`` or array elements ``123_4``) that Slurm still holds
    (pending, running, completing), from ``squeue``, which knows a job the moment it is submitted
    (``sacct`` can lag behind). Empty when squeue is missing or fails."""
    if not job_ids or shutil.which("squeue") is None:
        return set()
    bases = sorted({j.split("_")[0] for j in job_ids})
    try:
        out = subprocess.run(
            ["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(bases)],
            capture_output=True, text=True, timeout=20, check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    listed = {line.strip() for line in out.splitlines() if line.strip()}
    return {j for j in job_ids if j in listed}


def render(rows: list[StageStatus]) -> str:
    if not rows:
        return "no stage runs found (is --workdir right? run `heal-batch run` first)"
    head = f"{'stage':<17}{'run':<14}{'done':>6}{'running':>9}{'pending':>9}{'failed':>8}{'missing':>9}  sealed"
    lines = [head]
    for r in rows:
        c = r.counts
        lines.append(f"{r.stage:<17}{r.run_key[:12]:<14}{c['done']:>6}{c['running']:>9}{c['pending']:>9}"
                     f"{c['failed']:>8}{c['missing']:>9}  {'yes' if r.sealed else 'no'}")
    for r in rows:
        for f in r.failures:
            lines.append(f"  {r.stage} task {f.index}: {f.reason}" + (f"\n      log: {f.log_path}" if f.log_path else ""))
        if r.failures:
            lines.append(f"  rerun with: heal-batch rerun {r.manifest}")
    return "\n".join(lines)


def as_json(rows: list[StageStatus]) -> list[dict]:
    return [asdict(r) for r in rows]
