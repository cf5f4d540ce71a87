"""``heal-batch run``, ``stage``, ``rerun`` and ``sweep``: plan the DAG and hand it to an executor.

Each ``cmd_*`` takes the parsed namespace of its subcommand and returns the exit status.
"""

from __future__ import annotations

from pathlib import Path

from jsonargparse import Namespace

from heal_batch.commands.args import config_from_dict, pipeline_from
from heal_batch.config import PipelineConfig


def make_executor(cfg: PipelineConfig):
    """The executor the config names (``executor``, ``cluster``, local parallelism)."""
    from heal_batch.executors import make_executor as make

    return make(
        cfg.executor,
        parallelism=cfg.local_parallelism,
        timeout_min=cfg.timeout_min,
        cluster=cfg.cluster,
    )


def cmd_run(ns: Namespace) -> int:
    from heal_batch.pipeline.launch import launch

    cfg = pipeline_from(ns)
    stages = [s.strip() for s in ns.stages.split(",")] if ns.stages else None
    if ns.sbatch_dir:
        return _write_sbatch(cfg, stages, Path(ns.sbatch_dir))
    executor = make_executor(cfg)
    wait = ns.wait if ns.wait is not None else not executor.detached
    result = launch(cfg, executor, stages, dry_run=ns.dry_run, wait=wait, verify=ns.verify)
    if ns.dry_run:
        _print_preview(executor, [p.name for p in result.plans if p.todo])
        return 0
    return _finish(result, cfg, wait)


def _finish(result, cfg: PipelineConfig, wait: bool) -> int:
    """Exit status of a launch: each failed task's reason and log, else the report (``wait``)."""
    from heal_batch.pipeline.plan_text import failure_lines

    if result.failed or result.blocked:
        print("some tasks failed:")
        for line in failure_lines(result):
            print(line)
        print("`heal-batch run` with the same config reruns only them (and what reads them)")
        return 1
    if wait:
        from heal_batch.report import write_report

        print(f"report: {write_report(Path(cfg.workdir))}")
    return 0


def cmd_stage(ns: Namespace) -> int:
    from heal_batch.executors.debug import DebugExecutor
    from heal_batch.pipeline.launch import launch

    cfg = pipeline_from(ns)
    picks = [ns.task] if ns.task is not None else _indices(ns.shards)
    only = {ns.name: set(picks)} if picks is not None else None
    # plain-sbatch array elements run this side by side: no launcher lock, no temp-file sweep
    result = launch(cfg, DebugExecutor(), [ns.name], only=only, exclusive=False)
    return 1 if result.failed or result.blocked else 0


def cmd_rerun(ns: Namespace) -> int:
    from heal_batch.pipeline.launch import launch
    from heal_batch.pipeline.plan_text import ranges
    from heal_batch.pipeline.rerun import check_keys, rerun_request

    request = rerun_request(ns.manifest)
    record = {**request.pipeline, "workdir": str(request.workdir)}
    record["executor"] = ns.executor or request.manifest.executor
    record["cluster"] = ns.cluster or record.get("cluster")
    cfg = config_from_dict(record)
    indices = check_keys(cfg, request)
    head = f"rerun {request.manifest.stage} (run {request.manifest.run_key[:12]})"
    for name in request.skipped:
        print(f"{head}: leaving out {name}: its current run reads another upstream run")
    if not indices:
        print(f"{head}: nothing to rerun, every task is done (receipts and shards checked)")
        return 0
    print(f"{head}: tasks {ranges(indices)}, failed or missing, and the tasks that read them")
    executor = make_executor(cfg)
    wait = ns.wait if ns.wait is not None else not executor.detached
    result = launch(cfg, executor, request.stages, only=request.only, wait=wait)
    return _finish(result, cfg, wait=False)


def cmd_sweep(ns: Namespace) -> int:
    from heal_batch.pipeline import sweep
    from heal_batch.pipeline.launch import launch

    base = pipeline_from(ns)
    grids = [sweep.parse_grid(g) for group in ns.grid for g in _as_list(group)]
    seeds = [int(s) for s in ns.seeds.split(",") if s.strip()] if ns.seeds else None
    fields = (
        [f.strip() for f in ns.seed_fields.split(",") if f.strip()]
        if ns.seed_fields
        else sweep.seed_keys(base)
    )
    for key in [k for k, _ in grids] + (fields if seeds else []):
        if key not in ns:
            raise ValueError(f"sweep: {key!r} is not a config key (see heal-batch run --help)")
    stages = [s.strip() for s in ns.stages.split(",")] if ns.stages else None

    def build(overrides: dict) -> PipelineConfig:
        variant = ns.clone()
        for key, value in overrides.items():
            variant[key] = value
        return pipeline_from(variant)

    def run_one(cfg: PipelineConfig):
        return launch(cfg, make_executor(cfg), stages, wait=True)

    variants = sweep.make_variants(grids, seeds, fields)
    path, ok = sweep.run_sweep(ns.name, variants, build, run_one)
    print(f"sweep record: {path}")
    print(f"comparison: {sweep.write_comparison(path)}")
    return 0 if ok else 1


def _as_list(value) -> list[str]:
    return value if isinstance(value, list) else [value]


def _write_sbatch(cfg: PipelineConfig, stages: list[str] | None, folder: Path) -> int:
    from heal_batch.executors.slurm.profiles import load_profile
    from heal_batch.executors.slurm.sbatch import write_scripts
    from heal_batch.pipeline.launch import launch

    result = launch(cfg, None, stages, dry_run=True)
    submit = write_scripts(cfg, result.plans, load_profile(cfg.cluster or "local"), folder)
    print(f"wrote sbatch scripts; submit the DAG with: bash {submit}")
    return 0


def _print_preview(executor, stages: list[str]) -> None:
    """What each stage's jobs would be submitted with (Slurm: its #SBATCH lines)."""
    for name in stages:
        lines = executor.preview(name)
        if not lines:
            print(
                f"(the {executor.name} executor runs tasks on this machine; add --executor slurm "
                "--cluster <profile> to see sbatch lines)"
            )
            return
        print(f"# sbatch parameters for {name}:")
        for line in lines:
            print(f"  {line}")


def _indices(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(
            f"error: --shards expects comma-separated integers, got {text!r}"
        ) from None
