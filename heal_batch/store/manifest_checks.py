"""Checking a manifest file's contents before any of it is trusted or becomes a path.

:func:`check_manifest` raises :class:`ManifestError` for a manifest whose fields have the wrong
types, whose ``stage``, ``run_key``, ``upstream`` or task ``output`` are not valid names
(:mod:`heal_batch.store.names`), or whose tasks are not listed in index order 0..n-1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from heal_batch.store.names import RunFolderError, check_address, check_key, check_stage

_TEXT = (str, type(None))
_NUMBER = (int, float)
_FIELDS: dict[str, Any] = {
    "stage": str,
    "run_key": str,
    "stage_version": int,
    "format_version": int,
    "code_version": str,
    "config": dict,
    "pipeline": dict,
    "upstream": dict,
    "tasks": list,
    "executor": str,
    "library_versions": dict,
    "upstream_manifests": dict,
    "host": str,
    "planned_at": str,
    "sealed": bool,
    "sealed_at": _TEXT,
    "counters": dict,
    "seconds": _NUMBER,
    "schema": str,
}
_REQUIRED = (
    "stage",
    "run_key",
    "stage_version",
    "format_version",
    "code_version",
    "config",
    "pipeline",
    "upstream",
    "tasks",
)
_TASK_FIELDS: dict[str, Any] = {
    "index": int,
    "inputs": list,
    "state": str,
    "output": _TEXT,
    "records": int,
    "counters": dict,
    "seconds": _NUMBER,
    "attempt": int,
    "host": _TEXT,
    "job_id": _TEXT,
    "error": _TEXT,
    "log_path": _TEXT,
}


class ManifestError(RunFolderError):
    """A manifest file is damaged. ``sealed``: what the file claims (None when unreadable).

    The message names the file and says what to do: a sealed (or unreadable) manifest is the
    record of a finished run, so it is never replaced silently; removing it lets the next
    ``heal-batch run`` rebuild it from the receipts.
    """

    def __init__(self, path: Path | str | None, reason: str, sealed: bool | None):
        self.path, self.reason, self.sealed = path, reason, sealed
        super().__init__(
            f"{path}: damaged manifest ({reason}); remove it (rm {path}) and run "
            "`heal-batch run` again to rebuild it from the task receipts"
        )


def check_manifest(
    data: Any, source: Path | str | None, schema: str, states: tuple[str, ...]
) -> None:
    """Raise ManifestError unless ``data`` is a well-formed manifest of ``schema``."""
    sealed = data.get("sealed") if isinstance(data, dict) else None
    sealed = sealed if isinstance(sealed, bool) else None
    try:
        _check(data, source, schema, states)
    except RunFolderError as exc:
        reason = str(exc).removeprefix(f"{source}: ")
        raise ManifestError(source, reason, sealed) from None


def _check(data: Any, source, schema: str, states: tuple[str, ...]) -> None:
    if not isinstance(data, dict) or data.get("schema") != schema:
        raise RunFolderError(f"not a {schema} manifest")
    _types(data, _FIELDS, _REQUIRED, "manifest")
    check_stage(data["stage"])
    check_key(data["run_key"])
    for stage, key in data["upstream"].items():
        check_stage(stage)
        check_key(key)
    for stage, digest in data.get("upstream_manifests", {}).items():
        check_stage(stage)
        check_address(digest)
    for position, task in enumerate(data["tasks"]):
        _types(task, _TASK_FIELDS, ("index", "inputs"), f"task {position}")
        if task["index"] != position:
            raise RunFolderError(f"task {position} has index {task['index']!r}")
        if task.get("state", "missing") not in states:
            raise RunFolderError(f"task {position} has state {task['state']!r}")
        if task.get("output") is not None:
            check_address(task["output"])
        if not all(isinstance(v, str) for v in task["inputs"]):
            raise RunFolderError(f"task {position} inputs are not all strings")


def _types(data: Any, fields: dict[str, Any], required: tuple[str, ...], what: str) -> None:
    if not isinstance(data, dict):
        raise RunFolderError(f"{what} is a {type(data).__name__}, not an object")
    unknown = sorted(set(data) - set(fields))
    absent = sorted(set(required) - set(data))
    if unknown or absent:
        raise RunFolderError(f"{what} has unknown keys {unknown} or lacks {absent}")
    for name, value in data.items():
        kind = fields[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise RunFolderError(f"{what} field {name!r} is a {type(value).__name__}")
