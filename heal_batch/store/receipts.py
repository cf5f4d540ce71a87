"""Receipts: what one task leaves behind when it finishes or fails.

A task writes its own receipt (``runs/<stage>/<run_key>/tasks/<i>.json``) after its output shard
is in place, so array elements never share a file. A ``done`` receipt is good when its output
shard exists (and, when asked, verifies). A ``failed`` receipt keeps the error text and log path
until a later attempt replaces it. A receipt file that cannot be read, has wrong field types, or
names another stage, run or index than its path is *damaged*: :func:`scan_receipts` reports it
by path and its task counts as missing (it reruns and writes a good one).
"""

from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from heal_batch.store.atomic import read_json, write_json_atomic
from heal_batch.store.layout import Layout
from heal_batch.store.names import (
    RunFolderError,
    check_address,
    check_index,
    check_key,
    check_stage,
)
from heal_batch.store.shards import ShardError, shard_path, verify

SCHEMA = "heal_batch/receipt/v1"
_TEXT = (str, type(None))
_TYPES: dict[str, Any] = {
    "stage": str,
    "run_key": str,
    "index": int,
    "state": str,
    "inputs": list,
    "output": _TEXT,
    "records": int,
    "counters": dict,
    "seconds": (int, float),
    "attempt": int,
    "host": str,
    "job_id": _TEXT,
    "array_job_id": _TEXT,
    "array_task_id": _TEXT,
    "error": _TEXT,
    "log_path": _TEXT,
    "finished_at": str,
    "schema": str,
    "threads": (int, type(None)),
    "device": _TEXT,
}


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
    threads: int | None = None  # torch/OpenMP threads the task ran with (exact floats depend on it)
    device: str | None = None  # "cpu" or "<n> x <GPU name>"
    finished_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    schema: str = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: Path | None = None) -> Receipt:
        """Check every field's type and every name (stage, run key, output address); a bad one
        raises RunFolderError naming ``source``."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise RunFolderError(f"{source}: not a {SCHEMA} receipt")
        unknown = sorted(set(data) - set(_TYPES))
        absent = sorted({"stage", "run_key", "index", "state"} - set(data))
        if unknown or absent:
            raise RunFolderError(
                f"{source}: receipt with unknown keys {unknown} or without {absent}"
            )
        for name, value in data.items():
            kind = _TYPES[name]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise RunFolderError(
                    f"{source}: receipt field {name!r} has type {type(value).__name__}"
                )
        check_stage(data["stage"], source)
        check_key(data["run_key"], source)
        check_index(data["index"], source)
        if data["state"] not in ("done", "failed"):
            raise RunFolderError(f"{source}: receipt state {data['state']!r} is not done or failed")
        if data["state"] == "done":
            check_address(data.get("output"), source)
        counters = data.get("counters", {}).items()
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for _, v in counters):
            raise RunFolderError(f"{source}: receipt counters must map names to numbers")
        return cls(**data)


def write_receipt(layout: Layout, receipt: Receipt) -> Path:
    path = layout.receipt(receipt.stage, receipt.run_key, receipt.index)
    write_json_atomic(path, receipt.to_dict())
    return path


def read_receipts(layout: Layout, stage: str, key: str) -> dict[int, Receipt]:
    """The good receipts of a stage run by task index (damaged ones are left out)."""
    return scan_receipts(layout, stage, key)[0]


def scan_receipts(
    layout: Layout, stage: str, key: str
) -> tuple[dict[int, Receipt], dict[int, str]]:
    """(good receipts by task index, {task index: why its receipt file is damaged}).

    One directory listing and one read per receipt. A damaged receipt's reason names its path.
    """
    folder = layout.run_dir(stage, key) / "tasks"
    receipts: dict[int, Receipt] = {}
    damaged: dict[int, str] = {}
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return receipts, damaged
    for name in names:
        stem = name.removesuffix(".json")
        if not name.endswith(".json") or not stem.isdigit() or stem != str(int(stem)):
            continue  # temp files (".<name>.tmp") and anything else that is not a receipt name
        path = folder / name
        try:
            receipt = Receipt.from_dict(read_json(path), path)
            if (receipt.stage, receipt.run_key, receipt.index) != (stage, key, int(stem)):
                raise RunFolderError(
                    f"{path}: receipt of {receipt.stage} run "
                    f"{receipt.run_key[:12]} task {receipt.index} is misplaced"
                )
        except (ValueError, OSError) as exc:
            damaged[int(stem)] = f"damaged receipt {_reason(exc, path)}; the task counts as missing"
            continue
        receipts[receipt.index] = receipt
    return receipts, damaged


def receipt_state(
    layout: Layout, receipt: Receipt | None, deep: bool = False
) -> tuple[str, str | None]:
    """(``done``, None), (``failed``, error) or (``missing``, why). A done receipt whose output
    shard is gone (or, with ``deep``, fails its sha256 check) is missing: its task reruns."""
    if receipt is None:
        return "missing", None
    if receipt.state != "done" or receipt.output is None:
        return "failed", receipt.error or "failed"
    path = shard_path(layout.store, receipt.output)
    if not path.is_file():
        return "missing", f"output shard {receipt.output[:12]}… is missing from the store"
    if deep:
        try:
            verify(path, receipt.output)
        except ShardError as exc:
            return "missing", f"output shard failed verification: {exc}"
    return "done", None


def receipt_problem(layout: Layout, receipt: Receipt | None, deep: bool = False) -> str | None:
    """Why a receipt is not good (None when it is). ``deep`` re-hashes the output shard."""
    state, reason = receipt_state(layout, receipt, deep)
    return None if state == "done" else reason or state


def _reason(exc: Exception, path: Path) -> str:
    text = str(exc)
    return text if str(path) in text else f"{path}: {text}"
