"""Reduce streams of stage records to what the report shows (repair, score, train, entropy
examples).

Inputs: iterables of records as records.md defines them (repair candidates and summaries, scored
records, checkpoint records, trajectories). Outputs: small dataclasses. Missing optional fields are
tolerated (shown as "?"), so a report still renders from an older or partial run.

    repair = repair_data(records)
    # -> RepairData(summaries=[...], candidates=Counter({"repair": 12}), ...)
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
PURE_EXAMPLES = 3  # repairs shown in and out of the training sets
PURE_EXAMPLE_CHARS = 120
TRAJECTORY_KEYS = (
    "id",
    "completion",
    "offsets",
    "entropies",
    "entropy_method",
    "correct",
    "extracted_answer",
)


@dataclass
class RepairData:
    """repair: per-problem summaries, candidate counts by kind, and repairs usable as examples."""

    summaries: list[dict[str, Any]]
    candidates: Counter
    example_candidates: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ScoreData:
    """score: PURE ratios by record kind (repair, answer_guided, reference), unscored reasons, and
    a few repairs in and out of the training sets (``PureExample``)."""

    ratios: dict[str, list[float]]
    unscored: Counter
    examples: list[PureExample] = field(default_factory=list)


@dataclass
class PureExample:
    """A scored repair: its text after the cut (short), the oracle's label, whether it is in a
    training set (None: curriculum has not run)."""

    candidate_id: str
    after_cut: str
    oracle: str | None
    ratio: float | None
    kept: bool | None


@dataclass
class TrainingRun:
    stage: str
    set: str
    steps: int | None
    final_loss: float | None
    path: str | None
    log: list[tuple[int, float]]  # (step, loss)
    examples: int | None = None  # examples of its set
    base: str | None = None  # the student spec or the previous stage's set name


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
            examples.append(
                {
                    "id": record["id"],
                    "problem_id": record.get("problem_id", "?"),
                    "source_trajectory": record["source_trajectory"],
                    "breakpoint": record["breakpoint"],
                    "continuation": (record.get("continuation") or "")[:CONTEXT_CHARS],
                }
            )
    return RepairData(summaries, candidates, examples)


def score_data(
    records: Iterable[dict[str, Any]], kept: set[str] | None = None, n: int = PURE_EXAMPLES
) -> ScoreData:
    """Ratios and unscored reasons; up to ``n`` repairs of distinct problems in a training set
    (``kept``: repair ids that are) and ``n`` not in one (with ``kept`` None: ``n`` repairs)."""
    ratios: dict[str, list[float]] = {}
    unscored: Counter = Counter()
    picked: dict[bool | None, list[PureExample]] = {}
    problems: set[tuple[bool | None, str]] = set()
    for record in records:
        pure = record.get("pure")
        if not isinstance(pure, dict):
            continue
        if record.get("kind") == "repair":
            _pick(record, kept, picked, problems, n)
        if isinstance(pure.get("ratio"), (int, float)):
            ratios.setdefault(record.get("kind", "?"), []).append(float(pure["ratio"]))
        else:
            unscored[pure.get("unscored_reason") or "unscored"] += 1
    examples = [*picked.get(True, []), *picked.get(False, []), *picked.get(None, [])]
    return ScoreData(ratios, unscored, examples)


def _pick(record: dict, kept: set[str] | None, picked: dict, problems: set, n: int) -> None:
    """Add ``record`` to its group's examples unless the group is full or has its problem."""
    state = None if kept is None else record["id"] in kept
    group = picked.setdefault(state, [])
    if len(group) >= n or (state, record.get("problem_id")) in problems:
        return
    problems.add((state, record.get("problem_id")))
    text = record.get("text") or ""
    after = text[record.get("cut_char") or 0 :].strip()
    short = after if len(after) <= PURE_EXAMPLE_CHARS else after[:PURE_EXAMPLE_CHARS] + "…"
    ratio = record["pure"].get("ratio")
    group.append(PureExample(record["id"], short, record.get("oracle"), ratio, state))


def training_run(stage: str, record: dict[str, Any]) -> TrainingRun:
    return TrainingRun(
        stage=stage,
        set=record.get("set", "?"),
        steps=record.get("steps"),
        final_loss=record.get("final_loss"),
        path=record.get("path"),
        log=read_train_log(record.get("train_log")),
        examples=record.get("examples"),
        base=record.get("base"),
    )


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
        examples.append(
            EntropyExample(
                candidate_id=candidate["id"],
                problem_id=candidate["problem_id"],
                entropies=decode_floats(trajectory["entropies"]),
                token_index=bp.get("token_index"),
                strategy=str(bp.get("strategy", "?")),
                reason=str(bp.get("reason", "?")),
                before=completion[max(0, cut - CONTEXT_CHARS) : cut],
                after=completion[cut : cut + 80],
                repaired=candidate["continuation"],
                kept=None if kept is None else candidate["id"] in kept,
                trajectory={k: trajectory.get(k) for k in TRAJECTORY_KEYS},
                breakpoint=bp,
            )
        )
    return examples
