"""Checks the launcher makes before it writes anything or starts a task.

- :func:`check_executor`: the executor can submit from this machine (Slurm: ``sbatch``);
- :func:`model_problems`: every ``model``/``*_model`` setting of a stage about to run is the demo
  model, a hub name, or a local folder that exists (named by its config key, e.g.
  ``teacher.model``);
- :func:`refuse_in_flight`: no task is started again while it is still queued or running, on
  its scheduler (``heal_batch.executors.job_control``) or as a process on this host (its start
  marker, :mod:`heal_batch.store.markers`) left behind by a launcher that was killed.

Each raises :class:`PlanError` (or returns the problems) with what to do.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from heal_batch.store.layout import Layout
from heal_batch.store.markers import live_start


class PlanError(RuntimeError):
    """The requested stages cannot run now; the message says why and what to do."""


def check_executor(executor: Any) -> None:
    """Refuse an executor that cannot submit from this machine (e.g. Slurm without sbatch)."""
    if problem := executor.unavailable():
        raise PlanError(f"--executor {executor.name}: {problem}; nothing was written")


def model_problems(cfg: Any, plans: list) -> list[str]:
    """'<config key>: <why>' for each model setting of a stage with tasks to run whose local
    folder does not exist (hub names and the demo model are not checked here)."""
    from heal_batch.backends.models import DEMO_MODEL, resolve_model

    problems: dict[str, str] = {}
    for p in plans:
        if not p.todo:
            continue
        sections = {p.stage.section: p.stage.config}
        sections.update({s: getattr(cfg, s) for s in p.stage.shared})
        for key, spec in _model_fields(sections):
            if spec.lower() == DEMO_MODEL or key in problems:
                continue
            try:
                resolve_model(spec)
            except FileNotFoundError as exc:
                problems[key] = f"{key}: {exc}"
    return list(problems.values())


def _model_fields(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted config key, value) of every string field named ``model`` or ``*_model``."""
    if isinstance(obj, dict):
        items = obj.items()
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        items = ((f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj))
    else:
        return []
    found = []
    for name, value in items:
        key = f"{prefix}{name}"
        if isinstance(value, str) and (name == "model" or name.endswith("_model")):
            found.append((key, value))
        else:
            found += _model_fields(value, key + ".")
    return found


def refuse_in_flight(layout: Layout, plans: list) -> None:
    """Stop before starting a task that still runs: on Slurm (queued or running jobs of this run
    folder), or as a live process on this host that wrote the task's start marker."""
    _refuse_held_jobs(layout, plans)
    alive = []
    for p in plans:
        for task in p.todo:
            marker = live_start(layout, p.name, p.key, task.index)
            if marker:
                alive.append(
                    f"{p.name} task {task.index} (pid {marker['pid']}, started "
                    f"{marker.get('started_at', '?')})"
                )
    if alive:
        pids = " ".join(sorted({s.split("pid ")[1].split(",")[0] for s in alive}))
        raise PlanError(
            f"still running on this host, left by a heal-batch launcher that was killed: "
            f"{'; '.join(alive[:10])}. Wait for them to finish or stop them (kill {pids}; or "
            f"`heal-batch cancel --workdir {layout.workdir}`), then run again"
        )


def _refuse_held_jobs(layout: Layout, plans: list) -> None:
    """Two jobs of one task would write the same receipt (and, for training, the same
    checkpoint folder) at once."""
    from heal_batch.executors import job_control

    held: set[str] = set()
    for p in plans:
        entries = [p.manifest.tasks[t.index] for t in p.todo]
        submitted = {e.job_id for e in entries if e.state == "submitted" and e.job_id}
        held |= job_control(p.manifest.executor).held(submitted)
    jobs = {job.split("_")[0] for job in held}
    if jobs:
        ids = " ".join(sorted(jobs))
        raise PlanError(
            f"jobs {ids} of this run folder are still queued or running; follow them with "
            f"`heal-batch status --workdir {layout.workdir}` or stop them with `heal-batch cancel "
            f"--workdir {layout.workdir}`, then run again"
        )
