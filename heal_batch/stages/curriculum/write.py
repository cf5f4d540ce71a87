"""Write one set's examples in the set's order without holding their texts: an external bucket sort.

Input: the set's members as light rows in output order (columns ``shard``, ``line``, ``size``
from ``rows.LIGHT_SCHEMA``), the input shard addresses, a reader, ``example(record) -> dict``,
``write(dict)`` and a scratch folder. Output: every member's example written once, in member
order.

How: member i gets rank i; consecutive ranks form buckets of about ``spill_bytes`` characters
(at most ``MAX_BUCKETS`` buckets; a bigger set gets bigger buckets). Each input shard that holds
a member is streamed once; each member's example goes, as ``<rank>\\t<canonical JSON>``, to the
spill file of its bucket. Then the buckets are read in order, each sorted by rank, and written.
Peak memory: the member index (a few ints a member) plus one bucket; scratch disk: one
uncompressed copy of the set, removed when done (and at the start, so a rerun starts clean).

    write_in_order(kept, shards, io.read, to_example, io.write, io.scratch / "spill")
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from heal_batch.store.shards import canonical_line

if TYPE_CHECKING:
    import polars as pl

SPILL_BYTES = 64 << 20
MAX_BUCKETS = 256  # open spill files at once


def write_in_order(
    members: pl.DataFrame,
    shards: list[str],
    read: Callable[[str], Iterable[dict[str, Any]]],
    example: Callable[[dict[str, Any]], dict[str, Any]],
    write: Callable[[dict[str, Any]], None],
    scratch: Path,
    spill_bytes: int | None = None,
) -> None:
    """Write ``example(record)`` of every member, in member order (see the module docstring).
    ``spill_bytes``: the bucket size in characters (None: ``SPILL_BYTES``)."""
    import polars as pl

    shutil.rmtree(scratch, ignore_errors=True)
    if members.is_empty():
        return
    total = int(members["size"].sum())
    budget = max(spill_bytes or SPILL_BYTES, -(-total // MAX_BUCKETS), 1)
    index = members.select("shard", "line", "size").with_columns(
        rank=pl.int_range(pl.len(), dtype=pl.UInt32),
        bucket=((pl.col("size").cum_sum() - pl.col("size")) // budget).cast(pl.UInt32),
    )
    scratch.mkdir(parents=True)
    files: dict[int, IO[bytes]] = {}
    try:
        for (shard,), part in index.sort("shard", "line").group_by("shard", maintain_order=True):
            _spill_shard(part, read(shards[shard]), example, files, scratch)
    finally:
        for f in files.values():
            f.close()
    for bucket in sorted(files):
        _write_bucket(scratch / f"{bucket}.spill", write)
    shutil.rmtree(scratch)


def _spill_shard(
    part: pl.DataFrame,
    records: Iterable[dict[str, Any]],
    example: Callable[[dict[str, Any]], dict[str, Any]],
    files: dict[int, IO[bytes]],
    scratch: Path,
) -> None:
    """Stream one shard (to its end, so its hash is checked) and spill its members' examples."""
    lines, ranks, buckets = (part[c].to_list() for c in ("line", "rank", "bucket"))
    j = 0
    for n, record in enumerate(records):
        if j < len(lines) and n == lines[j]:
            if buckets[j] not in files:
                files[buckets[j]] = (scratch / f"{buckets[j]}.spill").open("wb")
            files[buckets[j]].write(b"%d\t" % ranks[j] + canonical_line(example(record)))
            j += 1
    if j < len(lines):  # the shard changed between the two reads: the store is immutable
        raise ValueError(f"input shard has no record {lines[j]}, which the first read had")


def _write_bucket(path: Path, write: Callable[[dict[str, Any]], None]) -> None:
    """Write one spill file's examples in rank order."""
    with path.open("rb") as f:
        entries = [line.split(b"\t", 1) for line in f]
    entries.sort(key=lambda e: int(e[0]))
    for _, payload in entries:
        write(json.loads(payload))
    path.unlink()
