"""``heal-batch logs``: find and print one task's log without hunting through run folders.

The task is task ``index`` of the stage's current run (``refs/<stage>``). Its log is, in order:

the newest existing file among the ``log_path`` of its receipt (written by the task as it ends),
of its manifest entry (set at submission by Slurm) and of its start marker (written by the task as
it begins: a running local task has neither of the others yet).

A submitit log is a pair: ``…_log.err`` (stderr, where logging goes) and ``…_log.out``.

A recorded path is read only when it lies inside ``runs/<stage>/<run_key>/logs/``: receipts and
markers are files of a shared run folder, so a hand-edited ``log_path`` must not make ``logs``
print any file of the machine, nor a copied folder show the original's logs. Nothing in the folder
is unpickled (submitit's ``*_submitted.pkl`` files are left to submitit).
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

from heal_batch.store.layout import Layout
from heal_batch.store.manifests import load_manifest
from heal_batch.store.markers import marker_log_path
from heal_batch.store.receipts import read_receipts


class LogNotFound(FileNotFoundError):
    """The stage has no current run, no such task, or no log of it."""


def task_logs(workdir: Path, stage: str, index: int) -> list[Path]:
    """The task's log files that exist: stderr first, then stdout when it is not empty."""
    layout = Layout(workdir)
    key = layout.read_ref(stage)
    if key is None:
        have = sorted(p.name for p in (layout.workdir / "refs").glob("*"))
        raise LogNotFound(
            f"{workdir}: stage {stage!r} has no run (refs/{stage} is missing); "
            f"stages with runs: {', '.join(have) or 'none'}"
        )
    err = _recorded(layout, stage, key, index)
    if err is None or not err.is_file():
        where = f" (recorded {err}, which is gone)" if err else ""
        raise LogNotFound(
            f"no log of {stage} task {index} (run {key[:12]}) under "
            f"{layout.logs(stage, key)}{where}; has it started? "
            f"`heal-batch status --workdir {workdir}`"
        )
    out = err.with_name(err.name.replace("_log.err", "_log.out"))
    return [err] + ([out] if out != err and out.is_file() and out.stat().st_size else [])


def tail(path: Path, lines: int | None) -> str:
    """The file's text, or its last ``lines`` lines (read streaming)."""
    with path.open(errors="replace") as fh:
        return "".join(fh if lines is None else deque(fh, maxlen=lines))


def _recorded(layout: Layout, stage: str, key: str, index: int) -> Path | None:
    """The newest existing log that the receipt, the manifest entry or the start marker names
    inside the run's log folder (a resubmitted task has an old receipt and a newer entry); the
    first named one when none exists."""
    receipt = read_receipts(layout, stage, key).get(index)
    path = layout.manifest(stage, key)
    manifest = load_manifest(path) if path.is_file() else None
    if manifest is not None and not 0 <= index < len(manifest.tasks):
        raise LogNotFound(
            f"{stage} run {key[:12]} has tasks 0-{len(manifest.tasks) - 1}, not {index}"
        )
    entry = manifest.tasks[index] if manifest else None
    logs = layout.logs(stage, key).resolve()
    marker = marker_log_path(layout, stage, key, index)
    recorded = (receipt and receipt.log_path, entry and entry.log_path, marker)
    named = [Path(p) for p in recorded if p]
    named = [p for p in named if p.resolve().is_relative_to(logs)]
    existing = [p for p in named if p.is_file()]
    if existing:
        return max(existing, key=lambda p: p.stat().st_mtime)
    return named[0] if named else None
