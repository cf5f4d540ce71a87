"""The one interface every stage implements, and the small types it trades in.

A stage plans cheap, picklable :class:`Task` s on the submit host and runs one of them inside an
array element. It reads only its task's inputs, writes only through the :class:`TaskIO` it is
given, and returns :class:`Counters`. Skipping finished tasks, submission, receipts and sealing
belong to the launcher.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from heal_batch.pipeline import failpoints
from heal_batch.store.layout import Layout
from heal_batch.store.manifests import Manifest
from heal_batch.store.shards import ShardWriter, read_records, shard_path

REF_PREFIX = "@"
# Bytes of memory the task may use, exported by the worker's prepare_task (Slurm's --mem, the local
# executor's share); TaskIO.memory_bytes hands it to stages as a number.
TASK_MEMORY_VAR = "HEAL_BATCH_TASK_MEMORY"


@dataclass(frozen=True)
class Task:
    """What one array element does. ``inputs`` holds shard addresses, file paths, or
    upstream references ``@<stage>/<index>`` that the worker resolves from receipts."""

    stage: str
    index: int
    inputs: tuple[str, ...] = ()


def ref(stage: str, index: int) -> str:
    return f"{REF_PREFIX}{stage}/{index}"


def parse_ref(value: str) -> tuple[str, int] | None:
    if not value.startswith(REF_PREFIX):
        return None
    stage, _, index = value[1:].rpartition("/")
    return stage, int(index)


def index_ranges(indices: Iterable[int]) -> str:
    """Task indices as Slurm's ``--array`` and plan lines write them: [0, 1, 2, 5] -> '0-2,5'."""
    spans: list[list[int]] = []
    for i in sorted(set(indices)):
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ",".join(f"{a}-{b}" if b > a else str(a) for a, b in spans)


class Counters(Counter):
    """``total``, ``kept`` and ``dropped_<reason>`` counts that end up in receipts and manifests."""

    def keep(self, n: int = 1) -> None:
        self["total"] += n
        self["kept"] += n

    def drop(self, reason: str, n: int = 1) -> None:
        self["total"] += n
        self[f"dropped_{reason}"] += n


class TaskIO:
    """A task's window on the work directory: read input shards, write its one output shard,
    keep private scratch files (resume chunks, checkpoints)."""

    def __init__(
        self,
        layout: Layout,
        stage: str,
        run_key: str,
        index: int,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.layout, self.stage, self.run_key, self.index = layout, stage, run_key, index
        self.rank, self.world_size = rank, world_size  # of this process in a multi-rank task
        self._writer: ShardWriter | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process of a multi-rank task that writes records."""
        return self.rank == 0

    @property
    def memory_bytes(self) -> int | None:
        """Memory this task may use (Slurm's --mem, the local executor's share), None if unknown."""
        value = os.environ.get(TASK_MEMORY_VAR, "")
        return int(value) if value.isdigit() else None

    def checkpoints(self, name: str) -> Path:
        """This run's checkpoint folder ``name`` (absolute; shared by the ranks, kept on reruns)."""
        return self.layout.checkpoints(self.run_key, name).resolve()

    @property
    def scratch(self) -> Path:
        path = self.layout.scratch(self.stage, self.run_key, self.index)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def read(self, address: str) -> Iterator[dict[str, Any]]:
        return read_records(shard_path(self.layout.store, address), address)

    def write(self, record: dict[str, Any]) -> None:
        if self._writer is None:
            self._writer = ShardWriter(self.layout.store)
        self._writer.write(record)
        if self._writer.count == 1:
            failpoints.hit(self.stage, self.index, "mid-write")

    def close(self) -> tuple[str, int]:
        """Publish the output shard (empty if nothing was written): (address, records)."""
        if self._writer is None:
            self._writer = ShardWriter(self.layout.store)
        return self._writer.close(), self._writer.count

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()


Resources = Literal["array", "distributed"]


class Stage(Protocol):
    """The contract between a stage and the launcher, worker and executors (nothing else is read).

    ``name``/``version`` identify the stage; ``upstream`` names the stages it reads (their
    manifests reach ``plan``); ``section`` is its attribute in the pipeline config and ``shared``
    the other config sections it reads (e.g. ``teacher``): the launcher builds the stage as
    ``cls(cfg.<section>, **{s: cfg.<s> for s in shared})``, and both go into its run key together
    with ``config`` and ``fingerprint()`` (the hash of files it reads outside the store).
    ``resources`` is ``"array"`` (one array element per task) or ``"distributed"`` (one
    multi-rank job per task, e.g. training). Adding a stage is one module and one line in
    ``heal_batch.pipeline.registry``.
    """

    name: ClassVar[str]
    version: ClassVar[int]
    upstream: ClassVar[tuple[str, ...]]
    section: ClassVar[str]
    shared: ClassVar[tuple[str, ...]]
    resources: ClassVar[Resources]
    config: Any

    def plan(self, upstream: Mapping[str, Manifest]) -> list[Task]: ...

    def run(self, task: Task, io: TaskIO) -> Counters: ...

    def fingerprint(self) -> str: ...
