"""``heal-batch``: argv to a subcommand of heal_batch.commands, and errors a user can act on.

Start-up stays light: this module imports only jsonargparse and the config dataclasses; a
subcommand's module is imported when it runs, and stages import torch, vLLM, DeepSpeed or
lm-eval inside ``run``.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys

from jsonargparse import ArgumentParser

from heal_batch.commands.args import pipeline_parser

DESCRIPTION = "HEAL reasoning distillation as sharded batch jobs (debug, local or Slurm)."


def build_parser() -> ArgumentParser:
    """``heal-batch`` and its subcommands (the pipeline ones take every config field as a flag)."""
    parser = ArgumentParser(
        prog="heal-batch", description=DESCRIPTION, env_prefix="HEAL_BATCH", default_env=False
    )
    commands = parser.add_subcommands(dest="command")
    commands.add_subcommand(
        "run", _run_parser(), help="run the pipeline (or --stages) on an executor"
    )
    commands.add_subcommand(
        "stage", _stage_parser(), help="run chosen tasks of one stage in-process"
    )
    commands.add_subcommand("status", _status_parser(), help="show the state of a run folder")
    commands.add_subcommand(
        "rerun", _rerun_parser(), help="rerun failed/missing tasks listed in a manifest"
    )
    commands.add_subcommand("inspect", _inspect_parser(), help="verify and print a shard")
    commands.add_subcommand(
        "sweep",
        _sweep_parser(),
        help="run a grid of variants in one run folder (shared upstream), then "
        "report/sweep.{md,json}",
    )
    report = ArgumentParser(
        description="Write a markdown + self-contained HTML report of a run folder."
    )
    report.add_argument("--workdir", type=str, default="runs/demo")
    commands.add_subcommand("report", report, help="write <workdir>/report/report.{md,html}")
    _add_ops_commands(commands)
    return parser


def _run_parser() -> ArgumentParser:
    run = pipeline_parser(description="Plan the DAG, skip finished tasks, submit the rest.")
    run.add_argument(
        "--stages", type=str | None, default=None, help="comma-separated stages (default: all)"
    )
    run.add_argument(
        "--dry_run",
        "--dry-run",
        type=bool,
        default=False,
        help="print the plan and sbatch parameters, submit nothing",
    )
    run.add_argument(
        "--wait",
        type=bool | None,
        default=None,
        help="wait for jobs (default: yes, except on slurm)",
    )
    run.add_argument(
        "--verify",
        type=bool,
        default=False,
        help="re-hash every finished output before trusting it",
    )
    run.add_argument(
        "--sbatch_dir",
        type=str | None,
        default=None,
        help="write plain sbatch scripts of the DAG here instead of submitting",
    )
    return run


def _stage_parser() -> ArgumentParser:
    stage = pipeline_parser(
        description="Run one stage's tasks in this process (debugging, plain sbatch)."
    )
    stage.add_argument("name", type=str, help="stage name")
    stage.add_argument("--shards", type=str | None, default=None, help="task indices, e.g. 1,3")
    stage.add_argument(
        "--task", type=int | None, default=None, help="one task index (e.g. $SLURM_ARRAY_TASK_ID)"
    )
    return stage


def _status_parser() -> ArgumentParser:
    status = ArgumentParser(
        description="Per stage: done/running/pending/failed/missing, reasons and logs."
    )
    status.add_argument("--workdir", type=str, default="runs/demo")
    status.add_argument("--json", type=bool, default=False)
    return status


def _rerun_parser() -> ArgumentParser:
    rerun = ArgumentParser(
        description="Resubmit a manifest's failed and missing tasks (and what reads them)."
    )
    rerun.add_argument("manifest", type=str, help="manifests/<stage>/<run_key>.json")
    rerun.add_argument("--executor", type=str | None, default=None)
    rerun.add_argument("--cluster", type=str | None, default=None)
    rerun.add_argument("--wait", type=bool | None, default=None)
    return rerun


def _inspect_parser() -> ArgumentParser:
    inspect = ArgumentParser(description="Verify a shard and print its first records.")
    inspect.add_argument("target", type=str, help="a shard path or a 64-hex address")
    inspect.add_argument("--workdir", type=str, default="runs/demo")
    inspect.add_argument("--head", type=int, default=5)
    inspect.add_argument(
        "--plot",
        type=str | None,
        default=None,
        help=(
            "draw a trajectory's token/step entropy and GEAR breakpoint: "
            "record id (or 'first') -> PNG"
        ),
    )
    inspect.add_argument("--out", type=str, default="entropy.png", help="PNG path for --plot")
    return inspect


def _sweep_parser() -> ArgumentParser:
    """``sweep``: the run flags plus the grid (heal_batch.pipeline.sweep)."""
    sweep = pipeline_parser(
        description="Run every variant (grids x seeds) in one run folder: "
        "run keys let variants share every stage upstream of what changed. "
        "Variants run one after another, each waiting for its jobs (Slurm "
        "too); sweeps/<name>.json records each variant's run keys."
    )
    sweep.add_argument(
        "--grid",
        type=str,
        default=[],
        action="append",
        help="KEY=[v1,v2,...], e.g. 'repair.gear.strategy=[entropy-surge,start]' "
        "(repeat for a cartesian product)",
    )
    sweep.add_argument(
        "--seeds",
        type=str | None,
        default=None,
        help="comma-separated seeds; each variant runs once per seed",
    )
    sweep.add_argument(
        "--seed_fields",
        type=str | None,
        default=None,
        help="config keys a seed sets (default: every stage's seed: generate, "
        "repair, score, curriculum, train, evaluate), e.g. repair.seed,train.seed",
    )
    sweep.add_argument("--name", type=str, default="sweep", help="sweeps/<name>.json")
    sweep.add_argument(
        "--stages", type=str | None, default=None, help="comma-separated stages (default: all)"
    )
    return sweep


def _add_ops_commands(commands) -> None:
    """logs, cancel: cluster verbs on a run folder (heal_batch.pipeline.logs / cancel)."""
    logs = ArgumentParser(description="Print one task's log (current run of the stage).")
    logs.add_argument("workdir", type=str, help="the run folder")
    logs.add_argument("stage", type=str, help="stage name, e.g. generate")
    logs.add_argument("task", type=int, help="task index")
    logs.add_argument("--tail", type=int | None, default=None, help="only the last N lines")
    commands.add_subcommand("logs", logs, help="print a task's log")

    cancel = ArgumentParser(
        description="Cancel a run folder's queued and running tasks "
        "(scancel on Slurm, the task processes on the local executor)."
    )
    cancel.add_argument("--workdir", type=str, default="runs/demo")
    cancel.add_argument(
        "--stages", type=str | None, default=None, help="comma-separated stages (default: all)"
    )
    commands.add_subcommand("cancel", cancel, help="cancel queued and running tasks")

    export = ArgumentParser(
        description="Export a stage's current run for training tools: "
        "curriculum as chat splits (messages + lineage), others as parquet."
    )
    export.add_argument("--workdir", type=str, default="runs/demo")
    export.add_argument("--stage", type=str, default="curriculum", help="stage name")
    export.add_argument("--out", type=str, required=True, help="output folder (empty or new)")
    export.add_argument(
        "--format",
        type=str,
        default="parquet",
        help="parquet (per split), hf (DatasetDict + parquet) or chat (JSONL)",
    )
    commands.add_subcommand("export", export, help="export a stage as parquet / HF dataset / chat")


# subcommand -> "module:function" under heal_batch.commands (imported only when it runs)
COMMANDS = {
    "run": "run:cmd_run",
    "stage": "run:cmd_stage",
    "rerun": "run:cmd_rerun",
    "sweep": "run:cmd_sweep",
    "status": "folder:cmd_status",
    "inspect": "folder:cmd_inspect",
    "report": "folder:cmd_report",
    "logs": "folder:cmd_logs",
    "cancel": "folder:cmd_cancel",
    "export": "folder:cmd_export",
}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    ns = parser.parse_args(argv)
    from heal_batch.data.problem_files import ProblemFileError
    from heal_batch.pipeline.launch import PlanError
    from heal_batch.store.lock import WorkdirBusy

    try:
        module, _, function = COMMANDS[ns.command].partition(":")
        command = getattr(importlib.import_module(f"heal_batch.commands.{module}"), function)
        return command(ns[ns.command])
    except (PlanError, ProblemFileError, WorkdirBusy, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise  # a real bug or system fault keeps its traceback
        where = f" writing {exc.filename}" if exc.filename else ""
        print(
            f"error: {exc.strerror}{where}: free space (or quota) on that file system and run "
            "again; finished tasks are kept and are not rerun",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
