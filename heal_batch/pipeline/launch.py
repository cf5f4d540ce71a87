"""The launcher: plan → skip done tasks → submit → collect receipts → seal manifests.

This is the only place that knows the DAG. Each stage run is identified by its run key; its
manifest is written at planning time and refreshed from receipts. On debug/local the stages run
one after another; on Slurm the whole DAG is submitted at once with dependencies, so the user can
log out, and running again re-plans from receipts and submits only what is missing.

One launcher works in a run folder at a time (:mod:`heal_batch.store.lock`); it alone sweeps the
store's stale temp files. A task reruns when it is not done, and so does every task that reads a
task that reruns. Sealed manifests are trusted while their shards exist (with ``verify``: while
they pass their sha256 check) and are never rewritten otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heal_batch.pipeline import preflight
from heal_batch.pipeline.contract import Stage, Task, parse_ref
from heal_batch.pipeline.dispatch import dispatch, mark_stale
from heal_batch.pipeline.plan_text import describe
from heal_batch.pipeline.preflight import PlanError
from heal_batch.pipeline.provenance import code_version, library_versions
from heal_batch.pipeline.registry import STAGES, upstream_closure
from heal_batch.store.atomic import write_text_atomic
from heal_batch.store.layout import Layout
from heal_batch.store.lock import workdir_lock
from heal_batch.store.manifest_checks import ManifestError
from heal_batch.store.manifests import (
    Manifest,
    TaskEntry,
    read_manifest,
    refresh,
    save_manifest,
    seal_if_complete,
    sealed_outputs_hold,
)
from heal_batch.store.names import RunFolderError
from heal_batch.store.runkeys import FORMAT_VERSION, run_key, to_plain
from heal_batch.store.shards import sweep_stale_parts

__all__ = ["LaunchResult", "PlanError", "StagePlan", "launch", "plan"]


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
    notes: list[str] = field(default_factory=list)  # e.g. a damaged manifest that was rebuilt
    stale: dict[int, str] = field(default_factory=dict)  # done tasks rerun: an input is rebuilt


@dataclass
class LaunchResult:
    plans: list[StagePlan]
    submitted: dict[str, list[int]] = field(default_factory=dict)
    failed: dict[str, list[int]] = field(default_factory=dict)
    blocked: dict[str, list[int]] = field(default_factory=dict)


def build_stage(cfg, name: str):
    """The stage object: its config section plus the shared sections it declares (``teacher``)."""
    cls = STAGES[name]
    shared = {section: getattr(cfg, section) for section in cls.shared}
    return cls(getattr(cfg, cls.section), **shared)


def key_material(cfg, stage) -> dict[str, Any]:
    """What a run key covers: the stage's section and the shared sections it uses."""
    return {"config": stage.config, **{s: getattr(cfg, s) for s in stage.shared}}


def plan(
    cfg,
    stages: list[str] | None = None,
    only: dict[str, set[int]] | None = None,
    deep: bool = False,
    dry_run: bool = False,
) -> list[StagePlan]:
    """Plan the selected stages (default: all) and the upstream stages they read. Writes nothing.

    A task is to do when it is not done, or when it reads a task that is to do. ``only``
    restricts a named stage to the given task indices (``rerun``, ``stage --task``); with
    ``only``, a selected stage it does not name submits just the tasks that read a task to do.
    Upstream stages that were not selected must already be complete. ``deep`` re-hashes every
    output shard, sealed stages included; a shard that fails counts as missing. With
    ``dry_run`` a missing input file (problem files, benchmark data) does not stop the plan: that
    stage's run key and its downstream keys are placeholders, and the StagePlan names it.
    """
    layout = Layout(Path(cfg.workdir))
    selected = set(stages or STAGES)
    unknown = sorted(selected - set(STAGES))
    if unknown:
        raise PlanError(f"unknown stage(s) {', '.join(unknown)}; valid stages: {', '.join(STAGES)}")
    keys: dict[str, str] = {}
    manifests: dict[str, Manifest] = {}
    rebuilt: dict[str, set[int]] = {}
    plans = []
    for name in upstream_closure(sorted(selected, key=list(STAGES).index)):
        stage = build_stage(cfg, name)
        upstream = {u: keys[u] for u in stage.upstream}
        fingerprint, missing = _fingerprint(stage, dry_run)
        material = key_material(cfg, stage)
        key = keys[name] = run_key(name, stage.version, material, upstream, fingerprint)
        tasks = stage.plan({u: manifests[u] for u in stage.upstream})
        p = StagePlan(name, stage, key, _placeholder(), tasks, [], name in selected, missing)
        p.manifest = manifests[name] = _manifest_for(layout, cfg, p, upstream, deep)
        p.todo = _todo(p, rebuilt, only, restrict=only is not None and name in selected)
        rebuilt[name] = {t.index for t in p.todo}
        if name not in selected and p.todo:
            raise PlanError(
                f"stage {name!r} (run {key[:12]}) has {len(p.todo)} unfinished task(s) "
                f"{[t.index for t in p.todo][:20]}; include it in --stages or run it first "
                f"(heal-batch rerun {layout.manifest(name, key)})"
            )
        plans.append(p)
    return plans


def _todo(p: StagePlan, rebuilt: dict[str, set[int]], only, restrict: bool) -> list[Task]:
    """The plan's tasks to submit; done tasks that read a rebuilt task become stale (missing)."""
    todo = []
    for task in p.tasks:
        entry = p.manifest.tasks[task.index]
        reads = next((v for v in task.inputs if _reads(v, rebuilt)), None)
        if only is not None and p.name in only:
            chosen = task.index in only[p.name] and (entry.state != "done" or reads is not None)
        else:
            chosen = reads is not None or (entry.state != "done" and not restrict)
        if chosen and entry.state == "done":
            p.stale[task.index] = f"its input {reads} is being rebuilt"
        if chosen:
            todo.append(task)
    mark_stale(p)
    return todo


def _reads(value: str, rebuilt: dict[str, set[int]]) -> bool:
    """Whether an input ``@stage/i`` refers to a task that is to do."""
    parsed = parse_ref(value)
    return parsed is not None and parsed[1] in rebuilt.get(parsed[0], ())


def _placeholder() -> Manifest:
    """Stands in until ``_manifest_for`` has read or made the real manifest."""
    return Manifest("", "", 0, 0, "", {}, {}, {}, [])


def _fingerprint(stage, dry_run: bool) -> tuple[str, str | None]:
    """(the stage's input fingerprint, None); in a dry run a missing file gives a placeholder."""
    try:
        return stage.fingerprint(), None
    except FileNotFoundError as exc:
        if not dry_run:
            raise
        return f"missing:{exc}", str(exc)


def _manifest_for(
    layout: Layout, cfg, p: StagePlan, upstream: dict[str, str], deep: bool
) -> Manifest:
    """The stage run's manifest as its receipts and shards stand now (in memory).

    A sealed one is kept as it is while its shards hold. A damaged unsealed one is replaced by a
    fresh one (noted in ``p.notes``); a damaged sealed (or unreadable) one stops the plan with
    the file to remove.
    """
    try:
        manifest = read_manifest(layout, p.name, p.key)
        if manifest is not None and len(manifest.tasks) != len(p.tasks):
            raise ManifestError(
                layout.manifest(p.name, p.key),
                f"it lists {len(manifest.tasks)} tasks, the stage plans {len(p.tasks)}",
                manifest.sealed,
            )
    except ManifestError as exc:
        if exc.sealed is not False:
            raise PlanError(str(exc)) from None
        p.notes.append(f"{exc.path}: damaged manifest ({exc.reason}); rebuilt from the receipts")
        manifest = None
    if manifest is not None and manifest.sealed and sealed_outputs_hold(layout, manifest, deep):
        return manifest
    if manifest is None:
        manifest = Manifest(
            stage=p.name,
            run_key=p.key,
            stage_version=p.stage.version,
            format_version=FORMAT_VERSION,
            code_version=code_version(),
            config=to_plain(key_material(cfg, p.stage)),
            pipeline=to_plain(cfg),
            upstream=upstream,
            tasks=[TaskEntry(index=t.index, inputs=list(t.inputs)) for t in p.tasks],
            executor=cfg.executor,
            library_versions=library_versions(),
        )
    if not manifest.sealed:
        refresh(layout, manifest, deep=deep)
    return manifest


def launch(
    cfg,
    executor,
    stages: list[str] | None = None,
    only: dict[str, set[int]] | None = None,
    dry_run: bool = False,
    wait: bool = True,
    verify: bool = False,
    echo=print,
    exclusive: bool = True,
) -> LaunchResult:
    """Plan, then (unless ``dry_run``) submit what is to do and collect it.

    ``exclusive`` (the launcher): hold the run folder's lock throughout, failing at once when
    another launcher holds it, and sweep the store's stale temp files. ``heal-batch stage`` in
    plain-sbatch array elements, which run side by side, passes False and does neither.
    """
    if dry_run:
        return _dry_run(cfg, stages, only, verify, echo)
    preflight.check_executor(executor)
    layout = Layout(Path(cfg.workdir))
    if not exclusive:
        return _launch(layout, cfg, executor, stages, only, wait, verify, echo, sweep=False)
    with workdir_lock(layout.workdir):
        return _launch(layout, cfg, executor, stages, only, wait, verify, echo, sweep=True)


def _point_ref(layout: Layout, name: str, key: str) -> None:
    """Make ``refs/<name>`` hold ``key`` (a bad ref is overwritten; an equal one is left alone)."""
    try:
        current = layout.read_ref(name)
    except RunFolderError:
        current = None
    if current != key:
        write_text_atomic(layout.ref(name), key + "\n")


def _dry_run(cfg, stages, only, verify: bool, echo) -> LaunchResult:
    plans = plan(cfg, stages, only, deep=verify, dry_run=True)
    for line in describe(plans, dry_run=True):
        echo(line)
    for problem in preflight.model_problems(cfg, plans):
        echo(f"warning: {problem}; a real run stops here")
    return LaunchResult(plans)


def _launch(
    layout: Layout, cfg, executor, stages, only, wait: bool, verify: bool, echo, sweep: bool
) -> LaunchResult:
    plans = plan(cfg, stages, only, deep=verify)
    result = LaunchResult(plans)
    if problems := preflight.model_problems(cfg, plans):
        raise PlanError("; ".join(problems) + "; nothing was written")
    if sweep:  # the launcher; `heal-batch stage` runs inside the job: its other ranks, started
        preflight.refuse_in_flight(layout, plans)  # by the same srun, are not a task to refuse
    for line in describe(plans):
        echo(line)
    removed, freed = sweep_stale_parts(layout.store) if sweep else (0, 0)
    if removed:  # safe now: this launcher holds the lock and no task of the plan is in flight
        echo(
            f"store: removed {removed} stale temp file(s), {freed / 1e6:.1f} MB, of killed writers"
        )
    for p in plans:  # a sealed manifest is not rewritten; a complete one is sealed now
        if not p.manifest.sealed and not seal_if_complete(layout, p.manifest):
            p.manifest.executor = cfg.executor  # who holds its submitted tasks now
            save_manifest(layout, p.manifest)
        _point_ref(layout, p.name, p.key)
    if not any(p.todo for p in plans):
        echo("nothing to do: every stage is complete")
        return result
    dispatch(layout, result, executor, wait, echo)
    return result
