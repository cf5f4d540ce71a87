"""Receipts: what one task leaves behind when it finishes or fails.

A task writes its own receipt (``runs/<stage>/<run_key>/tasks/<i>.json``) after its output shard
is in place, so array elements never share a file. A ``done`` receipt is good when its output
shard exists (and, when asked, verifies). A ``failed`` receipt keeps the error text and log path
until a later attempt replaces it.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from heal_batch.store.atomic import read_json, write_json_atomic
from heal_batch.store.layout import Layout
from heal_batch.store.shards import ShardError, shard_path, verify

SCHEMA = "heal_batch/receipt/v1"


@dataclass
class Receipt:
    stage: str
    run_key: str
    index: int
    state: Literal["done", "failed"]
    inputs: list[str] = field(default_factory=list)
    output: str | None = None
    records: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    attempt: int = 1
    host: str = field(default_factory=socket.gethostname)
    job_id: str | None = None
    array_job_id: str | None = None
    array_task_id: str | None = None
    error: str | None = None
    log_path: str | None = None
    finished_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    schema: str = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: Path | None = None) -> Receipt:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown or data.get("schema") != SCHEMA:
            raise ValueError(f"{source}: not a {SCHEMA} receipt (unknown keys {unknown})")
        return cls(**data)


def write_receipt(layout: Layout, receipt: Receipt) -> Path:
    path = layout.receipt(receipt.stage, receipt.run_key, receipt.index)
    write_json_atomic(path, receipt.to_dict())
    return path


def read_receipts(layout: Layout, stage: str, key: str) -> dict[int, Receipt]:
    """All receipts of a stage run by task index (one directory listing, one read each)."""
    folder = layout.run_dir(stage, key) / "tasks"
    receipts: dict[int, Receipt] = {}
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return receipts
    for name in names:
        if name.endswith(".json") and not name.startswith("."):
            path = folder / name
            receipt = Receipt.from_dict(read_json(path), path)
            receipts[receipt.index] = receipt
    return receipts


def receipt_problem(layout: Layout, receipt: Receipt | None, deep: bool = False) -> str | None:
    """Why a receipt is not good (None when it is). ``deep`` re-hashes the output shard."""
    if receipt is None:
        return "missing"
    if receipt.state != "done":
        return receipt.error or "failed"
    if receipt.output is None:
        return "done receipt without an output address"
    path = shard_path(layout.store, receipt.output)
    if not path.is_file():
        return f"output shard {receipt.output[:12]}… is missing from the store"
    if deep:
        try:
            verify(path, receipt.output)
        except ShardError as exc:
            return str(exc)
    return None
