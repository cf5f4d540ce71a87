"""Resumable progress inside one task: finished chunks saved as shards in the task's scratch folder.

A task killed or preempted half-way starts again, loads every chunk it already finished and only
computes the rest. Chunk ``i`` is a verified shard plus a pointer file written atomically after it,
so a chunk is either wholly there or absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from heal_batch.store.atomic import write_text_atomic
from heal_batch.store.shards import ShardError, read_records, shard_path, write_records


class ChunkProgress:
    def __init__(self, scratch: Path):
        self.dir = scratch / "chunks"

    def load(self, index: int) -> list[dict[str, Any]] | None:
        pointer = self.dir / f"{index}.address"
        if not pointer.is_file():
            return None
        address = pointer.read_text().strip()
        try:
            return list(read_records(shard_path(self.dir, address), address))
        except ShardError:
            return None  # a damaged chunk is simply recomputed

    def save(self, index: int, records: list[dict[str, Any]]) -> None:
        address = write_records(self.dir, records)
        write_text_atomic(self.dir / f"{index}.address", address + "\n")
