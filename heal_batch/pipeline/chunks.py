"""Resumable progress inside one task: finished chunks saved as shards in the task's scratch folder.

A task killed or preempted half-way starts again, loads every chunk it already finished and only
computes the rest. Chunk ``i`` is a verified shard plus a pointer file written atomically after it,
so a chunk is either wholly there or absent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from heal_batch.pipeline import failpoints
from heal_batch.pipeline.progress import report, start
from heal_batch.store.atomic import write_text_atomic
from heal_batch.store.shards import ShardError, read_records, shard_path, write_records

if TYPE_CHECKING:
    from heal_batch.pipeline.contract import TaskIO

T = TypeVar("T")


class ChunkProgress:
    """Chunk ``i`` of one task: ``load(i)`` gives its records or None, ``save(i, records)``."""

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


def resumable_chunks(
    io: TaskIO,
    items: Sequence[T],
    size: int,
    compute: Callable[[Sequence[T]], list[dict]],
    unit: str,
    tokens: Callable[[list[dict]], int] = lambda records: 0,
) -> Iterator[tuple[Sequence[T], list[dict[str, Any]]]]:
    """The one chunk-resume loop of generate, repair and score.

    Yields ``(chunk, records)`` for consecutive chunks of ``size`` items: ``records`` are loaded
    from the task's saved progress, or computed by ``compute(chunk)`` and saved before they are
    yielded (then the ``chunk`` failpoint fires). After the caller has handled a chunk, progress
    (``done/total unit``, and ``tokens(records)`` of the chunks computed here, for the rate) is
    reported for the local executor's bar and ``heal-batch status``. ``compute`` is only called
    for chunks not saved yet, so a model it needs can be loaded lazily (``functools.cache``).
    """
    progress = ChunkProgress(io.scratch)
    start(io.scratch, len(items), unit)
    for number, first in enumerate(range(0, len(items), size)):
        chunk = items[first : first + size]
        records = progress.load(number)
        computed = records is None
        if computed:
            records = compute(chunk)
            progress.save(number, records)
            failpoints.hit(io.stage, io.index, "chunk")
        yield chunk, records
        done = min(first + size, len(items))
        report(io.scratch, done, len(items), unit, tokens(records) if computed else 0, computed)
