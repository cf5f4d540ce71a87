"""ingest: problem files → validated, de-duplicated problem shards.

Inputs: the files in ``ingest.paths`` (JSONL, parquet, or ``builtin:arith?count=N&seed=S``).
Output: ``num_shards`` shards; problem ``id`` goes to shard ``sha256(id) mod num_shards``, so the
split is deterministic and does not depend on file order. Example record::

    {"id": "gsm8k-test-0", "problem": "Janet's ducks …", "answer": "18",
     "solution": "…", "source": "gsm8k/test", "meta": {"answer_raw": "18"}}

A duplicate (same id, same problem, answer and solution) is dropped and counted; the same id with
different content is an error naming both places.

    heal-batch stage ingest --config jobs/demo.yaml --ingest.paths '[data/a.jsonl]'
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from heal_batch.data.problem_files import ProblemFileError, fingerprint, iter_problems
from heal_batch.pipeline.contract import Counters, Resources, Task, TaskIO
from heal_batch.store.manifests import Manifest


@dataclass(frozen=True)
class IngestConfig:
    """Problem files to read and how many shards to split them into.

    Args:
        paths: JSONL or parquet files with id, problem, answer (solution, source, meta optional),
            or ``builtin:arith?count=N&seed=S`` for the built-in graded arithmetic problems.
        num_shards: number of problem shards (= array size of the generate stage).
    """

    paths: list[str] = field(default_factory=lambda: ["builtin:arith?count=48&seed=0"])
    num_shards: int = 4


def shard_of(problem_id: str, num_shards: int) -> int:
    digest = hashlib.sha256(problem_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % num_shards


def _content(record: dict) -> tuple:
    """What makes two problems the same (source and meta may differ between copies)."""
    return record["problem"], record["answer"], record.get("solution")


class IngestStage:
    name: ClassVar[str] = "ingest"
    version: ClassVar[int] = 1
    upstream: ClassVar[tuple[str, ...]] = ()
    section: ClassVar[str] = "ingest"
    resources: ClassVar[Resources] = "array"
    shared: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: IngestConfig):
        if config.num_shards < 1:
            raise ValueError(f"ingest.num_shards must be >= 1, got {config.num_shards}")
        if not config.paths:
            raise ValueError("ingest.paths is empty: give at least one problem file")
        self.config = config

    def fingerprint(self) -> str:
        return hashlib.sha256(
            "".join(fingerprint(p) for p in self.config.paths).encode()
        ).hexdigest()

    def plan(self, upstream: Mapping[str, Manifest]) -> list[Task]:
        inputs = tuple(self.config.paths)
        return [Task(self.name, i, inputs) for i in range(self.config.num_shards)]

    def run(self, task: Task, io: TaskIO) -> Counters:
        counters = Counters()
        seen: dict[str, tuple[str, dict]] = {}
        for where, record in iter_problems(list(task.inputs)):
            previous = seen.get(record["id"])
            if previous is not None:
                if _content(previous[1]) != _content(record):
                    raise ProblemFileError(
                        f"{where}: duplicate id {record['id']!r} with different content "
                        f"(first seen at {previous[0]}); ids must be unique"
                    )
                if shard_of(record["id"], self.config.num_shards) == task.index:
                    counters.drop("duplicate")
                continue
            seen[record["id"]] = (where, record)
        for _, record in seen.values():
            if shard_of(record["id"], self.config.num_shards) == task.index:
                io.write(record)
                counters.keep()
        return counters
