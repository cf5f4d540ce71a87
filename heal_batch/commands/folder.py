"""``heal-batch status``, ``inspect``, ``report``, ``logs``, ``cancel`` and ``export``: read (or
stop) what a run folder holds. Each ``cmd_*`` takes its subcommand's namespace and returns the
exit status.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from jsonargparse import Namespace

from heal_batch.commands.args import config_from_dict


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
            if (
                ns.plot
                and chosen is None
                and "entropies" in record
                and ns.plot in ("first", record.get("id"))
            ):
                chosen = record
            count += 1
    except ShardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{target}: {count} records, sha256 verified", file=sys.stderr)
    if ns.plot:
        if chosen is None:
            print(
                f"error: no trajectory record {ns.plot!r} with entropies in {target}",
                file=sys.stderr,
            )
            return 2
        print(f"wrote {_plot(chosen, Path(ns.out), Path(ns.workdir))}", file=sys.stderr)
    return 0


def _plot(record: dict, out: Path, workdir: Path) -> Path:
    from heal_batch.method.trajectory import breakpoint_of
    from heal_batch.report.entropy_plot import plot_entropy

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
    from heal_batch.export.stage import export_stage

    out = Path(ns.out)
    files = export_stage(Path(ns.workdir), ns.stage, out, ns.format)
    for name, rows in files.items():
        print(f"{out / name}: {rows} rows")
    if ns.format == "hf":
        print(f"{out / 'hf'}: DatasetDict (datasets.load_from_disk)")
    return 0
