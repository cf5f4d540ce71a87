"""``heal-batch``: run, status, stage, rerun, inspect, report.

Start-up stays light: this module imports only jsonargparse and the config dataclasses; stages
import torch, vLLM, DeepSpeed or lm-eval inside ``run``.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import sys
from pathlib import Path

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from heal_batch.config import PipelineConfig

DESCRIPTION = "HEAL reasoning distillation as sharded batch jobs (debug, local or Slurm)."


def _pipeline_parser(**kwargs) -> ArgumentParser:
    parser = ArgumentParser(**kwargs)
    parser.add_argument("--config", action=ActionConfigFile, help="pipeline YAML (see jobs/)")
    parser.add_class_arguments(PipelineConfig, None, as_group=False)
    return parser


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="heal-batch", description=DESCRIPTION, env_prefix="HEAL_BATCH", default_env=False)
    commands = parser.add_subcommands(dest="command")

    run = _pipeline_parser(description="Plan the DAG, skip finished tasks, submit the rest.")
    run.add_argument("--stages", type=str | None, default=None, help="comma-separated stages (default: all)")
    run.add_argument("--dry_run", "--dry-run", type=bool, default=False, help="print the plan and sbatch parameters, submit nothing")
    run.add_argument("--wait", type=bool | None, default=None, help="wait for jobs (default: yes, except on slurm)")
    run.add_argument("--verify", type=bool, default=False, help="re-hash every finished output before trusting it")
    run.add_argument("--sbatch_dir", type=str | None, default=None, help="write plain sbatch scripts of the DAG here instead of submitting")
    commands.add_subcommand("run", run, help="run the pipeline (or --stages) on an executor")

    stage = _pipeline_parser(description="Run one stage's tasks in this process (debugging, plain sbatch).")
    stage.add_argument("name", type=str, help="stage name")
    stage.add_argument("--shards", type=str | None, default=None, help="task indices, e.g. 1,3")
    stage.add_argument("--task", type=int | None, default=None, help="one task index (e.g. $SLURM_ARRAY_TASK_ID)")
    commands.add_subcommand("stage", stage, help="run chosen tasks of one stage in-process")

    status = ArgumentParser(description="Per stage: done/running/pending/failed/missing, reasons and logs.")
    status.add_argument("--workdir", type=str, default="runs/demo")
    status.add_argument("--json", type=bool, default=False)
    commands.add_subcommand("status", status, help="show the state of a run folder")

    rerun = ArgumentParser(description="Resubmit a manifest's failed and missing tasks (and what reads them).")
    rerun.add_argument("manifest", type=str, help="manifests/<stage>/<run_key>.json")
    rerun.add_argument("--executor", type=str | None, default=None)
    rerun.add_argument("--cluster", type=str | None, default=None)
    rerun.add_argument("--wait", type=bool | None, default=None)
    commands.add_subcommand("rerun", rerun, help="rerun failed/missing tasks listed in a manifest")

    inspect = ArgumentParser(description="Verify a shard and print its first records.")
    inspect.add_argument("target", type=str, help="a shard path or a 64-hex address")
    inspect.add_argument("--workdir", type=str, default="runs/demo")
    inspect.add_argument("--head", type=int, default=5)
    inspect.add_argument("--plot", type=str | None, default=None,
                         help="draw a trajectory's token/step entropy and GEAR breakpoint: record id (or 'first') -> PNG")
    inspect.add_argument("--out", type=str, default="entropy.png", help="PNG path for --plot")
    commands.add_subcommand("inspect", inspect, help="verify and print a shard")

    commands.add_subcommand("sweep", _sweep_parser(), help="run a grid of variants in one run "
                            "folder (shared upstream), then report/sweep.{md,json}")

    report = ArgumentParser(description="Write a markdown + self-contained HTML report of a run folder.")
    report.add_argument("--workdir", type=str, default="runs/demo")
    commands.add_subcommand("report", report, help="write <workdir>/report/report.{md,html}")
    _add_ops_commands(commands)
    return parser


def _sweep_parser() -> ArgumentParser:
    """``sweep``: the run flags plus the grid (heal_batch.pipeline.sweep)."""
    sweep = _pipeline_parser(description="Run every variant (grids x seeds) in one run folder: "
                             "run keys let variants share every stage upstream of what changed. "
                             "Variants run one after another, each waiting for its jobs (Slurm "
                             "too); sweeps/<name>.json records each variant's run keys.")
    sweep.add_argument("--grid", type=str, default=[], action="append",
                       help="KEY=[v1,v2,...], e.g. 'repair.gear.strategy=[entropy-surge,start]' "
                       "(repeat for a cartesian product)")
    sweep.add_argument("--seeds", type=str | None, default=None,
                       help="comma-separated seeds; each variant runs once per seed")
    sweep.add_argument("--seed_fields", type=str | None, default=None,
                       help="config keys a seed sets (default: every stage's seed: generate, "
                       "repair, score, curriculum, train, evaluate), e.g. repair.seed,train.seed")
    sweep.add_argument("--name", type=str, default="sweep", help="sweeps/<name>.json")
    sweep.add_argument("--stages", type=str | None, default=None,
                       help="comma-separated stages (default: all)")
    return sweep


def _add_ops_commands(commands) -> None:
    """logs, cancel: cluster verbs on a run folder (heal_batch.pipeline.logs / cancel)."""
    logs = ArgumentParser(description="Print one task's log (current run of the stage).")
    logs.add_argument("workdir", type=str, help="the run folder")
    logs.add_argument("stage", type=str, help="stage name, e.g. generate")
    logs.add_argument("task", type=int, help="task index")
    logs.add_argument("--tail", type=int | None, default=None, help="only the last N lines")
    commands.add_subcommand("logs", logs, help="print a task's log")

    cancel = ArgumentParser(description="Cancel a run folder's queued and running tasks "
                            "(scancel on Slurm, the task processes on the local executor).")
    cancel.add_argument("--workdir", type=str, default="runs/demo")
    cancel.add_argument("--stages", type=str | None, default=None,
                        help="comma-separated stages (default: all)")
    commands.add_subcommand("cancel", cancel, help="cancel queued and running tasks")

    export = ArgumentParser(description="Export a stage's current run for training tools: "
                            "curriculum as chat splits (messages + lineage), others as parquet.")
    export.add_argument("--workdir", type=str, default="runs/demo")
    export.add_argument("--stage", type=str, default="curriculum", help="stage name")
    export.add_argument("--out", type=str, required=True, help="output folder (empty or new)")
    export.add_argument("--format", type=str, default="parquet",
                        help="parquet (per split), hf (DatasetDict + parquet) or chat (JSONL)")
    commands.add_subcommand("export", export, help="export a stage as parquet / HF dataset / chat")


def pipeline_from(ns: Namespace, parser: ArgumentParser | None = None) -> PipelineConfig:
    """Build the typed config from a parsed namespace (nested sections become dataclasses)."""
    parser = parser or _pipeline_parser()
    fields = {f.name for f in dataclasses.fields(PipelineConfig)}
    values = parser.instantiate(Namespace(**{k: v for k, v in vars(ns).items() if k in fields}))
    return PipelineConfig(**{k: getattr(values, k) for k in fields})


def config_from_dict(data: dict) -> PipelineConfig:
    """Rebuild a pipeline config from a manifest's ``pipeline`` record."""
    parser = _pipeline_parser()
    return pipeline_from(parser.parse_object(data), parser)


def _executor(cfg: PipelineConfig):
    from heal_batch.executors import make_executor

    return make_executor(cfg.executor, parallelism=cfg.local_parallelism,
                         timeout_min=cfg.timeout_min, cluster=cfg.cluster)


def cmd_run(ns: Namespace) -> int:
    from heal_batch.pipeline.launch import launch

    cfg = pipeline_from(ns)
    stages = [s.strip() for s in ns.stages.split(",")] if ns.stages else None
    wait = ns.wait if ns.wait is not None else cfg.executor != "slurm"
    if ns.sbatch_dir:
        return _write_sbatch(cfg, stages, Path(ns.sbatch_dir))
    result = launch(cfg, _executor(cfg), stages, dry_run=ns.dry_run, wait=wait, verify=ns.verify)
    if ns.dry_run:
        _print_sbatch(cfg, [p.name for p in result.plans if p.todo])
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
    wait = ns.wait if ns.wait is not None else cfg.executor != "slurm"
    result = launch(cfg, _executor(cfg), request.stages, only=request.only, wait=wait)
    return _finish(result, cfg, wait=False)


def cmd_sweep(ns: Namespace) -> int:
    from heal_batch.pipeline import sweep
    from heal_batch.pipeline.launch import launch

    base = pipeline_from(ns)
    grids = [sweep.parse_grid(g) for group in ns.grid for g in _as_list(group)]
    seeds = [int(s) for s in ns.seeds.split(",") if s.strip()] if ns.seeds else None
    fields = ([f.strip() for f in ns.seed_fields.split(",") if f.strip()] if ns.seed_fields
              else sweep.seed_keys(base))  # fmt: skip
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
        return launch(cfg, _executor(cfg), stages, wait=True)

    variants = sweep.make_variants(grids, seeds, fields)
    path, ok = sweep.run_sweep(ns.name, variants, build, run_one)
    print(f"sweep record: {path}")
    print(f"comparison: {sweep.write_comparison(path)}")
    return 0 if ok else 1


def _as_list(value) -> list[str]:
    return value if isinstance(value, list) else [value]


def cmd_status(ns: Namespace) -> int:
    from heal_batch.pipeline import status

    rows = status.collect(Path(ns.workdir))
    print(json.dumps(status.as_json(rows), indent=2) if ns.json else status.render(rows))
    return 0


def cmd_inspect(ns: Namespace) -> int:
    from heal_batch.store.shards import ShardError, read_records, shard_path

    target = Path(ns.target)
    if not target.exists() and len(ns.target) == 64:
        target = shard_path(Path(ns.workdir) / "store", ns.target)
    try:
        count, chosen = 0, None
        for record in read_records(target):
            if count < ns.head:
                print(json.dumps(record, ensure_ascii=False)[:2000])
            if ns.plot and chosen is None and "entropies" in record and ns.plot in ("first", record.get("id")):
                chosen = record
            count += 1
    except ShardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{target}: {count} records, sha256 verified", file=sys.stderr)
    if ns.plot:
        if chosen is None:
            print(f"error: no trajectory record {ns.plot!r} with entropies in {target}", file=sys.stderr)
            return 2
        print(f"wrote {_plot(chosen, Path(ns.out), Path(ns.workdir))}", file=sys.stderr)
    return 0


def _plot(record: dict, out: Path, workdir: Path) -> Path:
    from heal_batch.report.entropy_plot import plot_entropy
    from heal_batch.method.trajectory import breakpoint_of

    gear = _gear_config(workdir)
    steps, breakpoint = breakpoint_of(record, gear)
    return plot_entropy(record, breakpoint, steps, out, search_fraction=gear.search_fraction)


def _gear_config(workdir: Path):
    """The GEAR settings of the workdir's latest repair run (steps and breakpoint as repair saw
    them), else the defaults."""
    from heal_batch.method.gear import GearConfig
    from heal_batch.store.layout import Layout
    from heal_batch.store.manifests import load_manifest

    layout = Layout(workdir)
    key = layout.read_ref("repair")
    path = layout.manifest("repair", key) if key else None
    if path is None or not path.exists():
        return GearConfig()
    return config_from_dict(load_manifest(path).pipeline).repair.gear


def cmd_report(ns: Namespace) -> int:
    from heal_batch.report import write_report

    path = write_report(Path(ns.workdir))
    print(f"report: {path}")
    return 0


def cmd_logs(ns: Namespace) -> int:
    from heal_batch.pipeline.logs import tail, task_logs

    paths = task_logs(Path(ns.workdir), ns.stage, ns.task)
    for path in paths:
        print(f"==> {path} <==", file=sys.stderr)
        sys.stdout.write(tail(path, ns.tail))
        sys.stdout.flush()
    return 0


def cmd_cancel(ns: Namespace) -> int:
    from heal_batch.executors.slurm.cancel import CancelError
    from heal_batch.pipeline.cancel import cancel_run, render

    stages = [s.strip() for s in ns.stages.split(",") if s.strip()] if ns.stages else None
    try:
        rows = cancel_run(Path(ns.workdir), stages)
    except CancelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render(rows, Path(ns.workdir)))
    return 0


def cmd_export(ns: Namespace) -> int:
    from heal_batch.export import export_stage

    out = Path(ns.out)
    files = export_stage(Path(ns.workdir), ns.stage, out, ns.format)
    for name, rows in files.items():
        print(f"{out / name}: {rows} rows")
    if ns.format == "hf":
        print(f"{out / 'hf'}: DatasetDict (datasets.load_from_disk)")
    return 0


def _write_sbatch(cfg: PipelineConfig, stages: list[str] | None, folder: Path) -> int:
    from heal_batch.executors.slurm.profiles import load_profile
    from heal_batch.pipeline.launch import launch
    from heal_batch.executors.slurm.sbatch import write_scripts

    result = launch(cfg, None, stages, dry_run=True)
    submit = write_scripts(cfg, result.plans, load_profile(cfg.cluster or "local"), folder)
    print(f"wrote sbatch scripts; submit the DAG with: bash {submit}")
    return 0


def _print_sbatch(cfg: PipelineConfig, stages: list[str]) -> None:
    """The sbatch lines each stage's array job would get (Slurm executor only)."""
    if cfg.executor != "slurm":
        print("(executor is not slurm: add --executor slurm --cluster <profile> to see sbatch lines)")
        return
    from heal_batch.executors.slurm.profiles import load_profile

    profile = load_profile(cfg.cluster or "local")
    for name in stages:
        print(f"# sbatch parameters for {name}:")
        for line in profile.for_stage(name).sbatch_lines():
            print(f"  {line}")


def _indices(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"error: --shards expects comma-separated integers, got {text!r}") from None


COMMANDS = {"run": cmd_run, "stage": cmd_stage, "rerun": cmd_rerun, "status": cmd_status, "inspect": cmd_inspect,
            "report": cmd_report, "sweep": cmd_sweep, "logs": cmd_logs, "cancel": cmd_cancel,
            "export": cmd_export}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    ns = parser.parse_args(argv)
    from heal_batch.pipeline.launch import PlanError
    from heal_batch.data.problem_files import ProblemFileError
    from heal_batch.store.lock import WorkdirBusy

    try:
        return COMMANDS[ns.command](ns[ns.command])
    except (PlanError, ProblemFileError, WorkdirBusy, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise  # a real bug or system fault keeps its traceback
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror}{where}: free space (or quota) on that file system and run "
              "again; finished tasks are kept and are not rerun", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
