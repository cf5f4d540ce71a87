"""The launcher: plan → skip done tasks → submit → collect receipts → seal manifests.

This is the only place that knows the DAG. Each stage run is identified by its run key; its
manifest is written at planning time and refreshed from receipts. On debug/local the stages run
one after another; on Slurm the whole DAG is submitted at once with dependencies, so the user can
log out, and running again re-plans from receipts and submits only what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from heal_batch.pipeline.provenance import code_version, library_versions
from heal_batch.pipeline.registry import STAGES, upstream_closure
from heal_batch.pipeline.contract import Stage, Task, parse_ref
from heal_batch.store.atomic import write_text_atomic
from heal_batch.store.layout import Layout
from heal_batch.store.manifests import Manifest, TaskEntry, load_manifest, refresh, save_manifest, seal_if_complete
from heal_batch.store.receipts import Receipt, read_receipts, write_receipt
from heal_batch.store.shards import shard_path, sweep_stale_parts
from heal_batch.store.runkeys import FORMAT_VERSION, run_key, to_plain
from heal_batch.pipeline.worker import TaskJob


class PlanError(RuntimeError):
    """The requested stages cannot run yet (an upstream stage is unfinished)."""


@dataclass
class StagePlan:
    name: str
    stage: Stage
    key: str
    manifest: Manifest
    tasks: list[Task]
    todo: list[Task]
    selected: bool = True
    missing: str | None = None  # dry run only: the input the run key could not be computed from


@dataclass
class LaunchResult:
    plans: list[StagePlan]
    submitted: dict[str, list[int]] = field(default_factory=dict)
    failed: dict[str, list[int]] = field(default_factory=dict)
    blocked: dict[str, list[int]] = field(default_factory=dict)


def build_stage(cfg, name: str):
    """The stage object: its own config section plus the shared sections it declares (``teacher``)."""
    cls = STAGES[name]
    shared = {section: getattr(cfg, section) for section in cls.shared}
    return cls(getattr(cfg, cls.section), **shared)


def key_material(cfg, stage) -> dict[str, Any]:
    """What a run key covers: the stage's section and the shared sections it uses."""
    return {"config": stage.config, **{s: getattr(cfg, s) for s in stage.shared}}


def plan(cfg, stages: list[str] | None = None, only: dict[str, set[int]] | None = None,
         deep: bool = False, dry_run: bool = False) -> list[StagePlan]:
    """Plan the selected stages (default: all) and the upstream stages they read.

    ``only`` restricts a stage's submission to the given task indices (``rerun``). Upstream
    stages that were not selected must already be complete. With ``dry_run`` a missing input
    file (problem files, benchmark data) does not stop the plan: that stage's run key and its
    downstream keys are placeholders, and the StagePlan names what is missing.
    """
    layout = Layout(Path(cfg.workdir))
    selected = set(stages or STAGES)
    keys: dict[str, str] = {}
    manifests: dict[str, Manifest] = {}
    plans = []
    for name in upstream_closure(sorted(selected, key=list(STAGES).index)):
        stage = build_stage(cfg, name)
        upstream = {u: keys[u] for u in stage.upstream}
        fingerprint, missing = _fingerprint(stage, dry_run)
        key = keys[name] = run_key(name, stage.version, key_material(cfg, stage), upstream, fingerprint)
        tasks = stage.plan({u: manifests[u] for u in stage.upstream})
        manifest = manifests[name] = _manifest_for(layout, cfg, stage, key, upstream, tasks, deep)
        todo = [t for t in tasks if manifest.tasks[t.index].state != "done"]
        if only and name in only:
            todo = [t for t in todo if t.index in only[name]]
        if name not in selected and todo:
            raise PlanError(
                f"stage {name!r} (run {key[:12]}) has {len(todo)} unfinished task(s) "
                f"{[t.index for t in todo][:20]}; include it in --stages or run it first"
            )
        plans.append(StagePlan(name, stage, key, manifest, tasks, todo, name in selected, missing))
    return plans


def _fingerprint(stage, dry_run: bool) -> tuple[str, str | None]:
    """(the stage's input fingerprint, None); in a dry run a missing file gives a placeholder."""
    try:
        return stage.fingerprint(), None
    except FileNotFoundError as exc:
        if not dry_run:
            raise
        return f"missing:{exc}", str(exc)


def _manifest_for(layout: Layout, cfg, stage, key: str, upstream: dict[str, str],
                  tasks: list[Task], deep: bool) -> Manifest:
    path = layout.manifest(stage.name, key)
    if path.is_file():
        manifest = load_manifest(path)
        if manifest.sealed and all(
            t.output and shard_path(layout.store, t.output).is_file() for t in manifest.tasks
        ):
            return manifest
    else:
        manifest = Manifest(
            stage=stage.name, run_key=key, stage_version=stage.version,
            format_version=FORMAT_VERSION, code_version=code_version(),
            config=to_plain(key_material(cfg, stage)), pipeline=to_plain(cfg), upstream=upstream,
            tasks=[TaskEntry(index=t.index, inputs=list(t.inputs)) for t in tasks],
            executor=cfg.executor, library_versions=library_versions(),
        )
    manifest.sealed = False
    refresh(layout, manifest, deep=deep)
    return manifest


def describe(plans: list[StagePlan], dry_run: bool = False) -> list[str]:
    """The retry plan: per stage, what is done and which task indices will be submitted.

    With ``dry_run`` the verb is "would submit" and every task to submit is listed with its
    inputs (``@stage/i`` is task i of an upstream stage), so the whole DAG can be read.
    """
    verb = "would submit" if dry_run else "submitting"
    lines = []
    for p in plans:
        done = len(p.manifest.by_state("done"))
        key = "(unknown)   " if p.missing else p.key[:12]
        head = f"{p.name:<15} run {key}  {done}/{len(p.tasks)} done"
        if p.missing:
            lines.append(f"{p.name:<15} warning: {p.missing}; a real run stops here")
        if not p.todo:
            lines.append(f"{head}, nothing to submit")
            continue
        failed = [t.index for t in p.todo if p.manifest.tasks[t.index].state == "failed"]
        lines.append(f"{head}, {verb} tasks {_ranges([t.index for t in p.todo])}"
                     + (f" ({len(failed)} failed before: {_ranges(failed)})" if failed else ""))
        for index in failed[:5]:
            lines.append(f"    task {index}: {p.manifest.tasks[index].error}")
        if dry_run:
            lines += [f"    task {t.index} <- {_inputs(t.inputs)}" for t in p.todo]
    return lines


def _inputs(inputs: tuple[str, ...], limit: int = 6) -> str:
    """Task inputs for a plan line: refs as they are, long paths shortened, at most ``limit``."""
    shown = [v if len(v) <= 60 else "..." + v[-57:] for v in inputs[:limit]]
    more = f", ... ({len(inputs) - limit} more)" if len(inputs) > limit else ""
    return (", ".join(shown) or "(no inputs)") + more


def launch(cfg, executor, stages: list[str] | None = None, only: dict[str, set[int]] | None = None,
           dry_run: bool = False, wait: bool = True, verify: bool = False, echo=print) -> LaunchResult:
    plans = plan(cfg, stages, only, deep=verify, dry_run=dry_run)
    result = LaunchResult(plans)
    for line in describe(plans, dry_run):
        echo(line)
    if dry_run:
        return result
    _refuse_in_flight(plans, cfg.workdir)
    layout = Layout(Path(cfg.workdir))
    removed, freed = sweep_stale_parts(layout.store)
    if removed:
        echo(f"store: removed {removed} stale temp file(s), {freed / 1e6:.1f} MB, of killed writers")
    for p in plans:
        p.manifest.executor = cfg.executor  # who holds its submitted tasks now
        save_manifest(layout, p.manifest)
        write_text_atomic(layout.ref(p.name), p.key + "\n")
    if not any(p.todo for p in plans):
        echo("nothing to do: every stage is complete")
        return result
    if executor.name == "slurm":
        _submit_dag(layout, plans, executor, result, wait, echo)
    else:
        for p in plans:
            if p.todo:
                _run_stage_now(layout, p, executor, result, echo)
    return result


def _refuse_in_flight(plans: list[StagePlan], workdir: str) -> None:
    """Stop before resubmitting a task whose Slurm job is still queued or running: two jobs would
    write the same receipt (and, for training, the same checkpoint folder) at once."""
    from heal_batch.pipeline.status import queued_jobs

    submitted: set[str] = set()
    for p in plans:
        if p.manifest.executor != "slurm":
            continue  # local job ids mean nothing to Slurm
        entries = [p.manifest.tasks[t.index] for t in p.todo]
        submitted |= {e.job_id for e in entries if e.state == "submitted" and e.job_id}
    jobs = {job.split("_")[0] for job in queued_jobs(submitted)}
    if jobs:
        ids = " ".join(sorted(jobs))
        raise PlanError(
            f"jobs {ids} of this run folder are still queued or running on Slurm; follow them "
            f"with `heal-batch status --workdir {workdir}` or `scancel {ids}`, then run again"
        )


def _jobs(layout: Layout, plans_by_name: dict[str, StagePlan], p: StagePlan, tasks: list[Task]):
    upstream = {u: plans_by_name[u].key for u in p.stage.upstream}
    return [TaskJob(str(layout.workdir), p.stage, p.key, upstream, t) for t in tasks]


def _ready(layout: Layout, plans_by_name: dict[str, StagePlan], task: Task) -> bool:
    for value in task.inputs:
        parsed = parse_ref(value)
        if parsed and plans_by_name[parsed[0]].manifest.tasks[parsed[1]].state != "done":
            return False
    return True


def _run_stage_now(layout: Layout, p: StagePlan, executor, result: LaunchResult, echo) -> None:
    by_name = {q.name: q for q in result.plans}
    ready = [t for t in p.todo if _ready(layout, by_name, t)]
    blocked = [t.index for t in p.todo if t not in ready]
    if blocked:
        result.blocked[p.name] = blocked
        echo(f"{p.name}: holding back tasks {_ranges(blocked)}: their upstream tasks failed")
    if not ready:
        return
    started = datetime.now(timezone.utc).isoformat()
    submission = executor.submit(_jobs(layout, by_name, p, ready), layout.logs(p.name, p.key), [])
    result.submitted[p.name] = [t.index for t in ready]
    _collect(layout, p, submission, executor.wait(submission), started)
    failed = p.manifest.by_state("failed")
    if failed:
        result.failed[p.name] = failed
    sealed = seal_if_complete(layout, p.manifest)
    save_manifest(layout, p.manifest)
    echo(f"{p.name}: {len(p.manifest.by_state('done'))}/{len(p.tasks)} done"
         + (f", failed {_ranges(failed)}" if failed else "") + (", sealed" if sealed else ""))


def _collect(layout: Layout, p: StagePlan, submission, errors: dict[int, str | None], started: str) -> None:
    """Refresh from receipts; a task that died without one (SIGKILL, OOM) gets one from here."""
    receipts = read_receipts(layout, p.name, p.key)
    for index, error in errors.items():
        receipt = receipts.get(index)
        if error and (receipt is None or receipt.finished_at < started):
            write_receipt(layout, Receipt(
                stage=p.name, run_key=p.key, index=index, state="failed",
                attempt=(receipt.attempt + 1) if receipt else 1, error=error,
                job_id=submission.job_ids.get(index), log_path=submission.log_paths.get(index),
            ))
    for index, job_id in submission.job_ids.items():
        p.manifest.tasks[index].job_id = job_id
        p.manifest.tasks[index].log_path = submission.log_paths.get(index)
    refresh(layout, p.manifest)


def _submit_dag(layout: Layout, plans: list[StagePlan], executor, result: LaunchResult, wait: bool, echo) -> None:
    by_name = {p.name: p for p in plans}
    submissions = {}
    started = datetime.now(timezone.utc).isoformat()
    for p in plans:
        if not p.todo:
            continue
        after = [submissions[u] for u in p.stage.upstream if u in submissions]
        submission = submissions[p.name] = executor.submit(_jobs(layout, by_name, p, p.todo), layout.logs(p.name, p.key), after)
        result.submitted[p.name] = [t.index for t in p.todo]
        for index, job_id in submission.job_ids.items():
            entry = p.manifest.tasks[index]
            entry.state, entry.job_id, entry.log_path = "submitted", job_id, submission.log_paths.get(index)
        save_manifest(layout, p.manifest)
        echo(f"{p.name}: submitted {len(p.todo)} task(s) as job(s) {', '.join(submission.array_ids)}"
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


def _ranges(indices: list[int]) -> str:
    """[0,1,2,5] → '0-2,5'."""
    spans: list[list[int]] = []
    for i in sorted(indices):
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ",".join(f"{a}-{b}" if b > a else str(a) for a, b in spans) or "-"
