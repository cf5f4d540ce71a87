"""Reduce streams of stage records to what the report shows (repair, score, train, entropy examples).

Inputs: iterables of records as records.md defines them (repair candidates and summaries, scored
records, checkpoint records, trajectories). Outputs: small dataclasses. Missing optional fields are
tolerated (shown as "?"), so a report still renders from an older or partial run.

    repair = repair_data(records)   # RepairData(summaries=[...], candidates=Counter({"repair": 12}), ...)
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_EXAMPLE_CANDIDATES = 500  # repairs remembered for picking entropy examples (memory bound)
CONTEXT_CHARS = 160
TRAJECTORY_KEYS = ("id", "completion", "offsets", "entropies", "entropy_method", "correct",
                   "extracted_answer")  # fmt: skip


@dataclass
class RepairData:
    """repair: per-problem summaries, candidate counts by kind, and repairs usable as examples."""

    summaries: list[dict[str, Any]]
    candidates: Counter
    example_candidates: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ScoreData:
    """score: PURE ratios by record kind (repair, answer_guided, reference) and unscored reasons."""

    ratios: dict[str, list[float]]
    unscored: Counter


@dataclass
class TrainingRun:
    stage: str
    set: str
    steps: int | None
    final_loss: float | None
    path: str | None
    log: list[tuple[int, float]]  # (step, loss)


@dataclass
class EntropyExample:
    """A repaired trajectory: the source trajectory's entropies and where GEAR cut it."""

    candidate_id: str
    problem_id: str
    entropies: list[float]
    token_index: int | None
    strategy: str
    reason: str
    before: str  # source completion up to the breakpoint (last CONTEXT_CHARS)
    after: str  # what the teacher wrote next (replaced)
    repaired: str  # the repair's continuation (first CONTEXT_CHARS)
    kept: bool | None  # in a training set (kept by PURE); None when curriculum has not run
    trajectory: dict[str, Any] = field(default_factory=dict)  # the source trajectory, for plots
    breakpoint: dict[str, Any] = field(default_factory=dict)  # the candidate's breakpoint


SUMMARY_KEYS = ("problem_id", "bucket", "attempted", "correct", "leaked", "kept", "reason")


def repair_data(records: Iterable[dict[str, Any]]) -> RepairData:
    summaries, candidates, examples = [], Counter(), []
    for record in records:
        kind = record.get("kind", "?")
        if kind == "repair_summary":
            summaries.append({k: record.get(k) for k in SUMMARY_KEYS})
            continue
        candidates[kind] += 1
        usable = kind == "repair" and record.get("breakpoint") and record.get("source_trajectory")
        if usable and len(examples) < MAX_EXAMPLE_CANDIDATES:
            examples.append({
                "id": record["id"], "problem_id": record.get("problem_id", "?"),
                "source_trajectory": record["source_trajectory"], "breakpoint": record["breakpoint"],
                "continuation": (record.get("continuation") or "")[:CONTEXT_CHARS],
            })  # fmt: skip
    return RepairData(summaries, candidates, examples)


def score_data(records: Iterable[dict[str, Any]]) -> ScoreData:
    ratios: dict[str, list[float]] = {}
    unscored: Counter = Counter()
    for record in records:
        pure = record.get("pure")
        if not isinstance(pure, dict):
            continue
        if isinstance(pure.get("ratio"), (int, float)):
            ratios.setdefault(record.get("kind", "?"), []).append(float(pure["ratio"]))
        else:
            unscored[pure.get("unscored_reason") or "unscored"] += 1
    return ScoreData(ratios, unscored)


def training_run(stage: str, record: dict[str, Any]) -> TrainingRun:
    return TrainingRun(
        stage=stage, set=record.get("set", "?"), steps=record.get("steps"),
        final_loss=record.get("final_loss"), path=record.get("path"),
        log=read_train_log(record.get("train_log")),
    )  # fmt: skip


def read_train_log(path: str | None) -> list[tuple[int, float]]:
    """(step, loss) pairs of a train_log.jsonl (or a folder holding one); [] if it is missing."""
    if not path:
        return []
    log = Path(path)
    if log.is_dir():
        log = log / "train_log.jsonl"
    if not log.is_file():
        return []
    points = []
    for line in log.read_text().splitlines():
        row = json.loads(line) if line.strip() else {}
        if isinstance(row.get("loss"), (int, float)) and "step" in row:
            points.append((int(row["step"]), float(row["loss"])))
    return points


def entropy_examples(
    chosen: list[dict[str, Any]], trajectories: dict[str, dict[str, Any]], kept: set[str] | None
) -> list[EntropyExample]:
    """Join chosen repairs with their source trajectories (those not found are skipped)."""
    from heal_batch.records import decode_floats

    examples = []
    for candidate in chosen:
        trajectory = trajectories.get(candidate["source_trajectory"])
        if trajectory is None or not trajectory.get("entropies"):
            continue
        bp = candidate["breakpoint"]
        completion = trajectory.get("completion", "")
        cut = bp.get("char_index")
        cut = cut if isinstance(cut, int) else len(completion)
        examples.append(EntropyExample(
            candidate_id=candidate["id"], problem_id=candidate["problem_id"],
            entropies=decode_floats(trajectory["entropies"]), token_index=bp.get("token_index"),
            strategy=str(bp.get("strategy", "?")), reason=str(bp.get("reason", "?")),
            before=completion[max(0, cut - CONTEXT_CHARS):cut], after=completion[cut:cut + 80],
            repaired=candidate["continuation"], kept=None if kept is None else candidate["id"] in kept,
            trajectory={k: trajectory.get(k) for k in TRAJECTORY_KEYS}, breakpoint=bp,
        ))  # fmt: skip
    return examples
