"""Read a run folder for the report: stage runs from refs/manifests/receipts, then records per
stage.

Input: a work directory. Output: :class:`RunData`, plain numbers and short texts per section, or
``None`` for a section whose stage has not produced anything yet. Read-only: manifests of unfinished
stages are refreshed from receipts in memory, never saved or sealed (``heal-batch status`` does
that). Shards are streamed and only what the report shows is kept, so big runs fit in memory.

    data = collect(Path("runs/demo"))
    data.stages["generate"].done, data.problems.outcomes["arith-s0-0001"]   # (n_correct, k)
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heal_batch.report.records import (
    EntropyExample,
    RepairData,
    ScoreData,
    TrainingRun,
    entropy_examples,
    repair_data,
    score_data,
    training_run,
)
from heal_batch.store.layout import Layout
from heal_batch.store.manifests import load_manifest, refresh
from heal_batch.store.names import RunFolderError
from heal_batch.store.shards import read_records, shard_path

DAG_ORDER = (
    "ingest",
    "generate",
    "repair",
    "score",
    "curriculum",
    "train-1",
    "train-2",
    "train-3",
    "train-baselines",
    "evaluate",
)
TRAIN_STAGES = ("train-1", "train-2", "train-3", "train-baselines")
EVAL_KEYS = (
    "checkpoint",
    "benchmark",
    "avg_at_n",
    "avg_at_n_stderr",
    "greedy_acc",
    "greedy_acc_stderr",
    "pass_at_n",
    "pass_at_n_stderr",
    "greedy_flex_acc",
    "greedy_flex_acc_stderr",
    "num_problems",
    "n_samples",
    "temperature",
    "top_p",
    "max_gen_toks",
    "limit",
    "backend",
    "versions",
    "results_file",
    "avg_at_n_ci",
    "pass_at_k",
    "pass_at_k_ci",
    "interval",
    "seeds",
    "correct_counts",
    "greedy_correct",
)


@dataclass
class StageRun:
    """One stage run as the refs point at it: task states, summed counters, done outputs."""

    name: str
    run_key: str
    sealed: bool
    states: dict[str, int]
    counters: dict[str, int]
    records: int
    seconds: float
    outputs: list[str]
    task_counters: list[dict[str, int]]  # per done task, aligned with outputs
    config: dict[str, Any] = field(default_factory=dict)  # the manifest's config section

    @property
    def tasks(self) -> int:
        return sum(self.states.values())

    @property
    def done(self) -> int:
        return self.states.get("done", 0)


@dataclass
class Problems:
    """generate: (n_correct, k) per problem id, and the number of trajectories read."""

    outcomes: dict[str, tuple[int, int]]
    trajectories: int


@dataclass
class RunData:
    workdir: Path
    stages: dict[str, StageRun]
    problems: Problems | None = None
    repair: RepairData | None = None
    score: ScoreData | None = None
    curriculum: dict[str, Counter] | None = None  # set -> kind -> records
    set_counters: dict[str, dict[str, int]] | None = None  # set -> its curriculum task's counters
    kept_ids: dict[str, set[str]] | None = None  # kind -> source ids that made it into a set
    set_digests: dict[str, tuple[int, int]] | None = None  # set -> (examples, ids_digest)
    examples: list[EntropyExample] = field(default_factory=list)
    training: list[TrainingRun] | None = None
    evaluation: list[dict[str, Any]] | None = None
    errors: dict[str, str] = field(default_factory=dict)  # section -> why it could not be read


def stage_runs(layout: Layout) -> dict[str, StageRun]:
    """Every stage with a ref, in DAG order (unknown stage names last, alphabetically)."""
    refs = layout.workdir / "refs"
    names = sorted(
        (p.name for p in refs.iterdir() if p.is_file()) if refs.is_dir() else [],
        key=lambda n: (DAG_ORDER.index(n) if n in DAG_ORDER else len(DAG_ORDER), n),
    )
    runs = {}
    for name in names:
        try:  # a bad ref or damaged manifest leaves its stage out (`heal-batch status` names it)
            key = layout.read_ref(name)
            path = layout.manifest(name, key) if key else None
            if path is None or not path.is_file():
                continue
            manifest = load_manifest(path)
        except RunFolderError:
            continue
        if not manifest.sealed:
            refresh(layout, manifest)  # in memory only
        done = [t for t in manifest.tasks if t.state == "done" and t.output]
        counters: Counter = Counter()
        for entry in done:
            counters.update(entry.counters)
        runs[name] = StageRun(
            name=name,
            run_key=key,
            sealed=manifest.sealed,
            states=dict(Counter(t.state for t in manifest.tasks)),
            counters=dict(counters),
            records=sum(t.records for t in done),
            seconds=round(sum(t.seconds for t in done), 1),
            outputs=[t.output for t in done],
            task_counters=[t.counters for t in done],
            config=manifest.config,
        )
    return runs


def iter_records(layout: Layout, run: StageRun | None) -> Iterator[dict[str, Any]]:
    """The records of a stage run's finished tasks, in task order (nothing if it has not run)."""
    for address in run.outputs if run else ():
        yield from read_records(shard_path(layout.store, address), address)


def collect(workdir: Path) -> RunData:
    """Everything the report shows; a section that fails to read is recorded in ``errors``."""
    layout = Layout(Path(workdir))
    data = RunData(workdir=layout.workdir, stages=stage_runs(layout))
    steps = [
        ("curriculum", _curriculum),
        ("repair", _repair),
        ("score", _score),
        ("generate", _generate),
        ("training", _training),
        ("evaluation", _evaluation),
    ]
    for section, step in steps:
        try:
            step(layout, data)
        except Exception as exc:  # noqa: BLE001 - one unreadable section must not hide the others
            data.errors[section] = f"{type(exc).__name__}: {exc}"
    return data


def _has(data: RunData, *names: str) -> list[StageRun]:
    return [data.stages[n] for n in names if n in data.stages and data.stages[n].done]


def _curriculum(layout: Layout, data: RunData) -> None:
    if not _has(data, "curriculum"):
        return
    run = data.stages["curriculum"]
    sets: dict[str, Counter] = {}
    kept: dict[str, set[str]] = {}
    set_counters, digests = {}, {}
    for address, counters in zip(run.outputs, run.task_counters, strict=True):
        name, digest = None, 0
        for record in read_records(shard_path(layout.store, address), address):
            kind, name = record.get("kind", "?"), record.get("set", "?")
            sets.setdefault(name, Counter())[kind] += 1
            if record.get("source_id"):
                kept.setdefault(kind, set()).add(record["source_id"])
                digest = (digest + ids_digest(record["source_id"])) % 2**64
        name = name or f"(empty set {len(set_counters)})"
        set_counters[name] = counters
        digests[name] = (sum(sets.get(name, Counter()).values()), digest)
    data.curriculum, data.kept_ids, data.set_counters = sets, kept, set_counters
    data.set_digests = digests


def ids_digest(source_id: str) -> int:
    """A 64-bit hash of one id; summed mod 2**64 over a set, equal sets give equal sums (in
    any order), so sets are compared without holding their ids."""
    return int.from_bytes(hashlib.blake2b(source_id.encode(), digest_size=8).digest(), "big")


def _repair(layout: Layout, data: RunData) -> None:
    if _has(data, "repair"):
        data.repair = repair_data(iter_records(layout, data.stages["repair"]))


def _score(layout: Layout, data: RunData) -> None:
    if _has(data, "score"):
        kept = None if data.kept_ids is None else data.kept_ids.get("repair", set())
        data.score = score_data(iter_records(layout, data.stages["score"]), kept)


def _generate(layout: Layout, data: RunData) -> None:
    """Pass rates per problem, and the source trajectories of the example repairs."""
    if not _has(data, "generate"):
        return
    candidates = data.repair.example_candidates if data.repair else []
    kept = None if data.kept_ids is None else data.kept_ids.get("repair", set())
    chosen = _choose_examples(candidates, kept)
    wanted = {c["source_trajectory"]: c for c in chosen}
    outcomes, trajectories, found = {}, 0, {}
    for record in iter_records(layout, data.stages["generate"]):
        trajectories += 1
        outcomes[record["problem_id"]] = (int(record["n_correct"]), int(record["k"]))
        if record["id"] in wanted:
            found[record["id"]] = record
    data.problems = Problems(outcomes, trajectories)
    data.examples = entropy_examples(chosen, found, kept)


def _choose_examples(candidates: list[dict], kept: set[str] | None, n: int = 3) -> list[dict]:
    """Up to n repairs of distinct problems, those kept by PURE first, then by id."""
    ranked = sorted(candidates, key=lambda c: (not (kept and c["id"] in kept), c["id"]))
    chosen, problems = [], set()
    for candidate in ranked:
        if candidate["problem_id"] not in problems:
            chosen.append(candidate)
            problems.add(candidate["problem_id"])
        if len(chosen) == n:
            break
    return chosen


def _training(layout: Layout, data: RunData) -> None:
    runs = _has(data, *TRAIN_STAGES)
    if not runs:
        return
    data.training = [
        training_run(run.name, record)
        for run in runs
        for record in iter_records(layout, run)
        if record.get("kind") == "checkpoint"
    ]


def _evaluation(layout: Layout, data: RunData) -> None:
    if _has(data, "evaluate"):
        data.evaluation = [
            {k: record.get(k) for k in EVAL_KEYS}
            for record in iter_records(layout, data.stages["evaluate"])
        ]
