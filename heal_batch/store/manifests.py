"""Manifests: the state of one stage run, from planning to sealing.

A manifest exists from the moment the launcher plans a stage run and lists every task's state:
``done`` (with its output address), ``failed`` (reason and log path), ``submitted`` (a job id,
no receipt yet) or ``missing``. ``heal-batch rerun MANIFEST`` resubmits exactly its failed and
missing tasks. It is *sealed* once every task has a good receipt; sealing is idempotent, so
the launcher or the last finishing array task may do it, and a sealed manifest is never rewritten
unless one of its output shards is gone or fails verification (it is then unsealed).

A manifest file that cannot be read or holds wrong types or names raises :class:`ManifestError`
naming the file; its ``sealed`` says whether the file claims to be sealed (None: unreadable).
"""

from __future__ import annotations

import dataclasses
import hashlib
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from heal_batch.store.atomic import read_json, write_json_atomic
from heal_batch.store.layout import Layout
from heal_batch.store.manifest_checks import ManifestError, check_manifest
from heal_batch.store.receipts import Receipt, receipt_state, scan_receipts
from heal_batch.store.shards import ShardError, shard_path, verify

SCHEMA = "heal_batch/manifest/v1"
TASK_STATES = ("done", "failed", "submitted", "missing")


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class TaskEntry:
    index: int
    inputs: list[str]
    state: str = "missing"
    output: str | None = None
    records: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    attempt: int = 0
    host: str | None = None
    job_id: str | None = None
    error: str | None = None
    log_path: str | None = None


@dataclass
class Manifest:
    stage: str
    run_key: str
    stage_version: int
    format_version: int
    code_version: str
    config: dict[str, Any]
    pipeline: dict[str, Any]
    upstream: dict[str, str]
    tasks: list[TaskEntry]
    executor: str = "debug"
    library_versions: dict[str, str] = field(default_factory=dict)
    upstream_manifests: dict[str, str] = field(default_factory=dict)
    host: str = field(default_factory=socket.gethostname)
    planned_at: str = field(default_factory=_now)
    sealed: bool = False
    sealed_at: str | None = None
    counters: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    schema: str = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: Path | None = None) -> Manifest:
        """Check every field (types, names, task order) first; raises ManifestError."""
        check_manifest(data, source, SCHEMA, TASK_STATES)
        data = dict(data)
        data["tasks"] = [TaskEntry(**t) for t in data["tasks"]]
        return cls(**data)

    @property
    def outputs(self) -> list[str | None]:
        return [t.output for t in self.tasks]

    def by_state(self, *states: str) -> list[int]:
        return [t.index for t in self.tasks if t.state in states]


def load_manifest(path: Path) -> Manifest:
    """The manifest in ``path``; FileNotFoundError without one, ManifestError if it is damaged."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest")
    try:
        data = read_json(path)
    except (ValueError, OSError) as exc:
        raise ManifestError(path, str(exc).removeprefix(f"{path}:").strip(), None) from None
    return Manifest.from_dict(data, path)


def read_manifest(layout: Layout, stage: str, key: str) -> Manifest | None:
    """The manifest of a stage run (None if there is none), checked to be that run's."""
    path = layout.manifest(stage, key)
    if not path.is_file():
        return None
    manifest = load_manifest(path)
    if (manifest.stage, manifest.run_key) != (stage, key):
        raise ManifestError(
            path, f"it describes {manifest.stage} run {manifest.run_key[:12]}", manifest.sealed
        )
    return manifest


def save_manifest(layout: Layout, manifest: Manifest) -> Path:
    path = layout.manifest(manifest.stage, manifest.run_key)
    write_json_atomic(path, manifest.to_dict())
    return path


def manifest_digest(layout: Layout, stage: str, key: str) -> str | None:
    """sha256 of a sealed manifest file (recorded by its downstream manifests)."""
    path = layout.manifest(stage, key)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def refresh(layout: Layout, manifest: Manifest, deep: bool = False) -> dict[int, Receipt]:
    """Update every task entry from its receipt (in memory); returns the good receipts.

    Entries already ``submitted`` with no receipt stay ``submitted``. A damaged receipt, or a done
    one whose output shard is gone (or, with ``deep``, fails verification), makes its task
    ``missing`` with the reason (naming the file) in ``error``.
    """
    receipts, damaged = scan_receipts(layout, manifest.stage, manifest.run_key)
    for entry in manifest.tasks:
        receipt = receipts.get(entry.index)
        if receipt is None:
            if entry.state != "submitted" or entry.index in damaged:
                entry.state = "missing"
            entry.output, entry.error = None, damaged.get(entry.index, entry.error)
            continue
        entry.state, entry.error = receipt_state(layout, receipt, deep)
        entry.output = receipt.output if entry.state == "done" else None
        entry.records, entry.counters = receipt.records, receipt.counters
        entry.seconds, entry.attempt, entry.host = receipt.seconds, receipt.attempt, receipt.host
        entry.job_id = receipt.job_id or entry.job_id
        entry.log_path = receipt.log_path
    return receipts


def sealed_outputs_hold(layout: Layout, manifest: Manifest, deep: bool = False) -> bool:
    """Whether a sealed manifest still holds: every output shard is in the store (and, with
    ``deep``, passes its sha256 check). If not, the manifest is unsealed (in memory) and refreshed;
    the tasks whose shards do not hold become ``missing`` with the reason, so they rerun."""
    bad: dict[int, str] = {}
    for entry in manifest.tasks:
        path = shard_path(layout.store, entry.output) if entry.output else None
        if path is None or not path.is_file():
            bad[entry.index] = f"output shard {str(entry.output)[:12]}… is missing from the store"
        elif deep:
            try:
                verify(path, entry.output)
            except ShardError as exc:
                bad[entry.index] = f"output shard failed verification: {exc}"
    if not bad:
        return True
    outputs = {index: manifest.tasks[index].output for index in bad}
    manifest.sealed, manifest.sealed_at = False, None
    refresh(layout, manifest)
    for index, reason in bad.items():
        entry = manifest.tasks[index]
        if entry.state == "done" and entry.output == outputs[index]:
            entry.state, entry.output, entry.error = "missing", None, reason
    return False


def seal_if_complete(layout: Layout, manifest: Manifest) -> bool:
    """Seal (and save) the manifest when every task is done; returns whether it is sealed."""
    if manifest.sealed:
        return True
    if any(t.state != "done" for t in manifest.tasks):
        return False
    totals: dict[str, int] = {}
    for entry in manifest.tasks:
        for name, value in entry.counters.items():
            totals[name] = totals.get(name, 0) + value
    manifest.counters = totals
    manifest.seconds = round(sum(t.seconds for t in manifest.tasks), 3)
    manifest.upstream_manifests = {
        stage: digest
        for stage, key in manifest.upstream.items()
        if (digest := manifest_digest(layout, stage, key))
    }
    manifest.sealed, manifest.sealed_at = True, _now()
    save_manifest(layout, manifest)
    return True
