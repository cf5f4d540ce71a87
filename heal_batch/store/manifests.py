"""Manifests: the state of one stage run, from planning to sealing.

A manifest exists from the moment the launcher plans a stage run and lists every task's state:
``done`` (with its output address), ``failed`` (reason and log path), ``submitted`` (a job id,
no receipt yet) or ``missing``. ``heal-batch rerun MANIFEST`` resubmits exactly its failed and
missing tasks. It is *sealed* once every task has a good receipt; sealing is idempotent, so
the launcher or the last finishing array task may do it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from heal_batch.store.atomic import read_json, write_json_atomic
from heal_batch.store.layout import Layout
from heal_batch.store.receipts import Receipt, read_receipts, receipt_problem

SCHEMA = "heal_batch/manifest/v1"
TASK_STATES = ("done", "failed", "submitted", "missing")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


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
    def from_dict(cls, data: dict[str, Any], source: Path | None = None) -> Manifest:
        if data.get("schema") != SCHEMA:
            raise ValueError(f"{source}: not a {SCHEMA} manifest (schema={data.get('schema')!r})")
        data = dict(data)
        data["tasks"] = [TaskEntry(**t) for t in data["tasks"]]
        return cls(**data)

    @property
    def outputs(self) -> list[str | None]:
        return [t.output for t in self.tasks]

    def by_state(self, *states: str) -> list[int]:
        return [t.index for t in self.tasks if t.state in states]


def load_manifest(path: Path) -> Manifest:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest")
    return Manifest.from_dict(read_json(path), path)


def save_manifest(layout: Layout, manifest: Manifest) -> Path:
    path = layout.manifest(manifest.stage, manifest.run_key)
    write_json_atomic(path, manifest.to_dict())
    return path


def manifest_digest(layout: Layout, stage: str, key: str) -> str | None:
    """sha256 of a sealed manifest file (recorded by its downstream manifests)."""
    path = layout.manifest(stage, key)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def refresh(layout: Layout, manifest: Manifest, deep: bool = False) -> dict[int, Receipt]:
    """Update every task entry from its receipt; returns the receipts that were read.

    Entries already ``submitted`` with no receipt stay ``submitted``.
    """
    receipts = read_receipts(layout, manifest.stage, manifest.run_key)
    for entry in manifest.tasks:
        receipt = receipts.get(entry.index)
        problem = receipt_problem(layout, receipt, deep=deep)
        if receipt is None:
            if entry.state != "submitted":
                entry.state = "missing"
            continue
        entry.state = "done" if problem is None else "failed"
        entry.output = receipt.output if problem is None else None
        entry.records, entry.counters = receipt.records, receipt.counters
        entry.seconds, entry.attempt, entry.host = receipt.seconds, receipt.attempt, receipt.host
        entry.job_id = receipt.job_id or entry.job_id
        entry.error = None if problem is None else problem
        entry.log_path = receipt.log_path
    return receipts


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
