"""What the launcher prints: the plan per stage, and the failed tasks at the end of a run.

for line in describe(plans, dry_run=True): print(line)
for line in failure_lines(result): print(line)     # reason and log of every failed task
"""

from __future__ import annotations

from typing import Any

from heal_batch.pipeline.contract import index_ranges


def describe(plans: list[Any], dry_run: bool = False) -> list[str]:
    """The retry plan: per stage, what is done and which task indices will be submitted.

    With ``dry_run`` the verb is "would submit" and every task to submit is listed with its
    inputs (``@stage/i`` is task i of an upstream stage), so the whole DAG can be read. Notes
    (a damaged manifest that was rebuilt) and the reasons of earlier failures come under each
    stage.
    """
    verb = "would submit" if dry_run else "submitting"
    lines = []
    for p in plans:
        done = len(p.manifest.by_state("done"))
        key = "(unknown)   " if p.missing else p.key[:12]
        head = f"{p.name:<15} run {key}  {done}/{len(p.tasks)} done"
        if p.missing:
            lines.append(f"{p.name:<15} warning: {p.missing}; a real run stops here")
        lines += [f"{p.name:<15} warning: {note}" for note in p.notes]
        if not p.todo:
            lines.append(f"{head}, nothing to submit")
            continue
        failed = [t.index for t in p.todo if p.manifest.tasks[t.index].state == "failed"]
        lines.append(
            f"{head}, {verb} tasks {ranges([t.index for t in p.todo])}"
            + (f" ({len(failed)} failed before: {ranges(failed)})" if failed else "")
        )
        explained = [t.index for t in p.todo if p.manifest.tasks[t.index].error]
        for index in explained[:5]:
            lines.append(f"    task {index}: {p.manifest.tasks[index].error}")
        if len(explained) > 5:
            lines.append(f"    ... and {len(explained) - 5} more (heal-batch status lists them)")
        if dry_run:
            lines += [f"    task {t.index} <- {_inputs(t.inputs)}" for t in p.todo]
    return lines


def failure_lines(result: Any) -> list[str]:
    """One line per failed task (its one-line reason) with its log path, then the held-back ones."""
    by_name = {p.name: p for p in result.plans}
    lines = []
    for name, indices in result.failed.items():
        for index in indices:
            entry = by_name[name].manifest.tasks[index]
            reason = (entry.error or "failed").strip().splitlines() or ["failed"]
            lines.append(f"  {name} task {index}: {reason[-1][:300]}")
            if entry.log_path:
                lines.append(f"      log: {entry.log_path}")
    for name, indices in result.blocked.items():
        lines.append(f"  {name} tasks {ranges(indices)}: not started, an input task failed")
    return lines


def ranges(indices: list[int]) -> str:
    """[0,1,2,5] -> '0-2,5'; '-' for none."""
    return index_ranges(indices) or "-"


def _inputs(inputs: tuple[str, ...], limit: int = 6) -> str:
    """Task inputs for a plan line: refs as they are, long paths shortened, at most ``limit``."""
    shown = [v if len(v) <= 60 else "..." + v[-57:] for v in inputs[:limit]]
    more = f", ... ({len(inputs) - limit} more)" if len(inputs) > limit else ""
    return (", ".join(shown) or "(no inputs)") + more
