"""``heal-batch rerun MANIFEST``: rerun a stage run's failed and missing tasks, and what reads them.

The manifest must be the current run of its stage in its own run folder: it sits at
``<workdir>/manifests/<stage>/<run_key>.json``, its ``stage`` and ``run_key`` fields say so, and
``refs/<stage>`` holds that run key. Anything else (a copy from elsewhere, a run the config has
since moved away from) is refused: ``heal-batch run --config ...`` is the way to run another config.

The config is the one the refs point at: the manifest's own record for its stage and upstream
stages, and for each downstream stage that reads the current runs, the record of the manifest
its ref points at. Every run key recomputed from that config must equal its ref, or the rerun is
refused (an edited problem file, a changed model folder). The tasks rerun are the manifest's
tasks that are not done as its receipts and shards stand now, then the downstream tasks that
read them.

    request = rerun_request("runs/demo/manifests/repair/3f1a….json")
    cfg = config_from_dict(request.pipeline)     # the CLI parses the config record
    check_keys(cfg, request)                     # PlanError unless every key equals its ref
    launch(cfg, executor, request.stages, only=request.only)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heal_batch.pipeline.launch import PlanError, plan
from heal_batch.pipeline.registry import STAGES, downstream_of, registered
from heal_batch.store.layout import Layout
from heal_batch.store.manifests import Manifest, load_manifest, read_manifest
from heal_batch.store.names import RunFolderError, check_key, check_stage

RUN_INSTEAD = "use `heal-batch run --config <your config>` to run the current configuration"


@dataclass
class RerunRequest:
    """What to rerun: the run folder, the manifest's stage run, the merged config record, the
    stages to plan (the manifest's and the downstream ones on the current runs) and the task
    indices the manifest's stage may submit."""

    workdir: Path
    manifest: Manifest
    pipeline: dict[str, Any]
    stages: list[str]
    only: dict[str, set[int]]
    skipped: list[str] = field(default_factory=list)  # downstream stages on another upstream run


def rerun_request(manifest_path: str | Path) -> RerunRequest:
    """Check the manifest is its stage's current run in its run folder; raise PlanError if not."""
    path = Path(manifest_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest")
    resolved = path.resolve()
    workdir = resolved.parent.parent.parent
    if resolved.parent.parent.name != "manifests" or resolved.suffix != ".json":
        raise PlanError(
            f"{path} is not at <workdir>/manifests/<stage>/<run_key>.json; rerun "
            f"takes a manifest inside its run folder ({RUN_INSTEAD})"
        )
    try:
        stage = registered(check_stage(resolved.parent.name, path), path)
        key = check_key(resolved.stem, path)
    except RunFolderError as exc:
        raise PlanError(f"{exc}; rerun takes <workdir>/manifests/<stage>/<run_key>.json") from None
    manifest = load_manifest(resolved)
    try:
        registered(manifest.stage, path)
    except RunFolderError as exc:
        raise PlanError(str(exc)) from None
    if (manifest.stage, manifest.run_key) != (stage, key):
        raise PlanError(
            f"{path} describes {manifest.stage} run {manifest.run_key[:12]}, not the "
            f"{stage} run {key[:12]} its place says; it was copied or edited"
        )
    layout = Layout(workdir)
    current = layout.read_ref(stage)
    if current != key:
        now = f"run {current[:12]}" if current else "no run"
        raise PlanError(
            f"{path} is not the current {stage} run: refs/{stage} points at {now} "
            f"(the config last run here), not at {key[:12]}; {RUN_INSTEAD}"
        )
    stages, skipped, pipeline = _downstream(layout, manifest)
    only = {stage: set(range(len(manifest.tasks)))}
    return RerunRequest(workdir, manifest, pipeline, stages, only, skipped)


def check_keys(cfg: Any, request: RerunRequest) -> list[int]:
    """Refuse unless every stage the rerun plans has the run key its ref holds; returns the
    manifest's task indices to rerun (not done as its receipts and shards stand now)."""
    layout = Layout(request.workdir)
    plans = plan(cfg, request.stages, request.only)
    for p in plans:
        ref = layout.read_ref(p.name)
        if ref != p.key:
            raise PlanError(
                f"stage {p.name}: the config recorded in the manifests gives run {p.key[:12]}, but "
                f"refs/{p.name} points at {str(ref)[:12]} (the config or its input files changed "
                f"since); {RUN_INSTEAD}"
            )
    return [t.index for p in plans if p.name == request.manifest.stage for t in p.todo]


def _downstream(layout: Layout, manifest: Manifest) -> tuple[list[str], list[str], dict]:
    """(stages to plan, downstream stages left out, the merged config record)."""
    pipeline = dict(manifest.pipeline)
    stages, skipped = [manifest.stage], []
    for name in downstream_of({manifest.stage})[1:]:
        key = layout.read_ref(name)
        other = read_manifest(layout, name, key) if key else None
        if other is None:
            continue
        cls = STAGES[name]
        on_current = all(
            other.upstream.get(u) == layout.read_ref(u)
            and (u in stages or u not in downstream_of({manifest.stage}))
            for u in cls.upstream
        )
        if not on_current:
            skipped.append(name)
            continue
        stages.append(name)
        for section in (cls.section, *cls.shared):
            if section in other.pipeline:
                pipeline[section] = other.pipeline[section]
    return stages, skipped, pipeline
