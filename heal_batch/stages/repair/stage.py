"""repair: GEAR repairs for corner cases and answer-guided samples for hard problems.

Input: one trajectory shard (generate task i). Problems are bucketed by the teacher's pass rate.
Corner cases (<= ``corner_max_correct`` of k correct): up to ``paths_per_problem`` failed
trajectories are cut at their GEAR breakpoint (``gear.strategy``), a hindsight hint with the
reference answer is appended and the teacher continues ``continuations_per_path`` times (prefix
continuation: the prompt ends mid-assistant-turn). Hard problems get ``guided_per_problem``
answer-guided samples, and ``reference_problems`` easy problems per shard answer-guided samples
kept as PURE's guided reference (kind ``guided_reference``, never trained on). Every sample is
graded on its hint-free text, checked for hint leaks, and kept with its lineage; every corner and
hard problem also gets a ``repair_summary``. Output example::

    {"kind": "repair", "id": "arith-s0-0005#s2#c1", "problem_id": "arith-s0-0005",
     "bucket": "corner", "source_trajectory": "arith-s0-0005#s2",
     "breakpoint": {"step_index": 2, "token_index": 41, "char_index": 120,
     "strategy": "entropy-surge", "reason": "max_surge", "surge": 0.8, ...},
     "hint": "\\n\\nWait. (Hindsight: ...", "prefix": "...", "continuation": "... \\\\boxed{12}.",
     "text": "<hint-free training target>", "cut_char": 121, "seed": 1234, "correct": true, ...}
    {"kind": "repair_summary", "id": "arith-s0-0005#summary", "attempted": 4, "correct": 1,
     "leaked": 0, "kept": 1, "reason": "kept", "dropped": {"wrong_answer": 3}, ...}

Training pairs the ORIGINAL problem (``user_prompt``) with ``text``; the hint is never in it.
Progress is saved every ``chunk_problems`` problems (resume like generate).

    heal-batch stage repair --config jobs/demo.yaml --repair.gear.strategy start
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from heal_batch.method.gear import GearConfig
from heal_batch.method.hints import DEFAULT_ANSWER_GUIDED_TEMPLATE
from heal_batch.pipeline.chunks import resumable_chunks
from heal_batch.pipeline.contract import Counters, Resources, Task, TaskIO, ref
from heal_batch.records import GUIDED_REFERENCE, OMIT_AT_DEFAULT
from heal_batch.stages.repair.jobs import (
    Work,
    choose_reference,
    group_by_problem,
    problem_bucket,
)
from heal_batch.stages.teacher import TeacherConfig
from heal_batch.store.manifests import Manifest

PLACEMENTS = ("prompt", "start")
BUCKETS = ("hard", "corner")


@dataclass(frozen=True)
class RepairConfig:
    """GEAR repair of corner cases and answer-guided samples for hard problems.

    Args:
        easy_min_pass_rate: a problem is easy (left alone) when its pass rate is at least this.
        corner_max_correct: a non-easy problem with at most this many correct samples is a corner
            case.
        paths_per_problem: p, failed trajectories repaired per corner case (paper: 10).
        continuations_per_path: m, teacher continuations per repaired trajectory (paper: 20).
        guided_per_problem: answer-guided samples per problem of ``guided_buckets`` (0 = none).
        guided_buckets: buckets that get answer-guided samples (hard; add corner to give them both).
        guided_for_corner: also give corner problems answer-guided samples (one reading of the
            paper's "Pass@30 < 0.5"; the same as adding corner to ``guided_buckets``).
        guided_placement: prompt (answer in the user turn, ``guided_template``) or start (the
            inline hint opens the answer).
        guided_template: user text for answer-guided samples; needs {problem} and {answer}.
        reference_problems: easy problems per shard (chosen by a stable hash of their ids) that
            also get answer-guided samples, kept as PURE's guided reference (kind
            ``guided_reference``, never trained on; ``pure.reference: guided``).
        reference_per_problem: answer-guided samples per reference problem (null: as many as
            ``guided_per_problem``); the reference needs ``pure.min_reference`` verified ones.
        gear: breakpoint strategy, hint template and leak phrases.
        exact_entropy: when trajectories carry only a top-K entropy estimate (vLLM), re-score
            them with the exact scorer before choosing breakpoints.
        temperature: continuation sampling temperature.
        top_p: nucleus mass (1.0 = off).
        max_new_tokens: cap on continuation tokens.
        seed: base seed of continuations and of the random strategy.
        stop: strings that end a continuation.
        chunk_problems: problems per saved chunk (resume granularity).
        answer_style: auto, boxed or gsm8k (how the final answer is read when grading).
    """

    easy_min_pass_rate: float = 0.5
    corner_max_correct: int = 1
    paths_per_problem: int = 2
    continuations_per_path: int = 2
    guided_per_problem: int = 2
    guided_buckets: list[str] = field(default_factory=lambda: ["hard"])
    guided_placement: str = "prompt"
    guided_template: str = DEFAULT_ANSWER_GUIDED_TEMPLATE
    gear: GearConfig = field(default_factory=GearConfig)
    exact_entropy: bool = True
    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0
    stop: list[str] = field(default_factory=list)
    chunk_problems: int = 8
    answer_style: str = "auto"
    guided_for_corner: bool = field(default=False, metadata=OMIT_AT_DEFAULT)
    reference_problems: int = field(default=0, metadata=OMIT_AT_DEFAULT)
    reference_per_problem: int | None = field(default=None, metadata=OMIT_AT_DEFAULT)

    def __post_init__(self):
        if self.guided_placement not in PLACEMENTS:
            raise ValueError(
                f"repair.guided_placement {self.guided_placement!r} "
                f"is not one of {', '.join(PLACEMENTS)}"
            )
        bad = [b for b in self.guided_buckets if b not in BUCKETS]
        if bad:
            raise ValueError(f"repair.guided_buckets: {bad} not in {', '.join(BUCKETS)}")
        keys = ("paths_per_problem", "continuations_per_path", "guided_per_problem")
        for key in (*keys, "reference_problems", "reference_per_problem"):
            if (getattr(self, key) or 0) < 0:  # reference_per_problem may be null
                raise ValueError(f"repair.{key} must be >= 0, got {getattr(self, key)}")
        if self.chunk_problems < 1:
            raise ValueError("repair.chunk_problems must be >= 1")
        if self.continuations_per_path == 0 and self.paths_per_problem > 0:
            raise ValueError(
                "repair.continuations_per_path must be >= 1 when paths_per_problem > 0"
            )

    def augments(self, work: Work) -> bool:
        """Whether the problem gets repairs or answer-guided samples (a reference problem: its
        guided reference samples)."""
        repaired = work.bucket == "corner" and self.paths_per_problem > 0
        return repaired or self.guided(work.bucket, work.reference)

    def guided(self, bucket: str, reference: bool = False) -> bool:
        """Whether a problem of ``bucket`` (a reference problem with ``reference``) gets
        answer-guided samples."""
        if reference:
            return self.samples_per_reference() > 0
        chosen = bucket in self.guided_buckets or (bucket == "corner" and self.guided_for_corner)
        return chosen and self.guided_per_problem > 0

    def samples_per_reference(self) -> int:
        """Answer-guided samples per guided-reference problem."""
        n = self.reference_per_problem
        return self.guided_per_problem if n is None else n


class RepairStage:
    name: ClassVar[str] = "repair"
    version: ClassVar[int] = 1
    upstream: ClassVar[tuple[str, ...]] = ("generate",)
    section: ClassVar[str] = "repair"
    resources: ClassVar[Resources] = "array"
    shared: ClassVar[tuple[str, ...]] = ("teacher",)

    def __init__(self, config: RepairConfig, teacher: TeacherConfig):
        self.config, self.teacher = config, teacher

    def fingerprint(self) -> str:
        return ""

    def plan(self, upstream: Mapping[str, Manifest]) -> list[Task]:
        return [
            Task(self.name, t.index, (ref("generate", t.index),))
            for t in upstream["generate"].tasks
        ]

    def run(self, task: Task, io: TaskIO) -> Counters:
        cfg = self.config
        groups = group_by_problem(io.read(task.inputs[0]))
        buckets = [
            problem_bucket(g, cfg.easy_min_pass_rate, cfg.corner_max_correct) for g in groups
        ]
        refs = choose_reference(groups, buckets, cfg.reference_problems, cfg.seed)
        work = [
            Work(g, b, g[0]["problem_id"] in refs) for g, b in zip(groups, buckets, strict=True)
        ]
        worker = functools.cache(lambda: self._worker(io.memory_bytes))
        counters = Counters()
        for chunk, records in resumable_chunks(
            io,
            work,
            cfg.chunk_problems,
            lambda chunk: _repair_chunk(worker, chunk, cfg),
            "problems",
            _tokens_out,
        ):
            for w in chunk:
                counters[f"bucket_{w.bucket}"] += 1
            for record in records:
                io.write(record)
                _count(counters, record)
        return counters

    def _worker(self, memory_bytes: int | None):
        """The repair teacher (loaded only when a chunk has problems to augment)."""
        from heal_batch.stages.repair.rollouts import RepairTeacher

        return RepairTeacher(self.teacher, self.config, memory_bytes)


def _repair_chunk(worker, chunk: Sequence[Work], cfg: RepairConfig) -> list[dict]:
    todo = [w for w in chunk if cfg.augments(w)]
    return worker().repair(todo) if todo else []


def _tokens_out(records: list[dict[str, Any]]) -> int:
    """Every token the teacher generated: kept or dropped (summaries), plus the guided
    reference's (it has no summary)."""
    return sum(_generated(r) for r in records)


def _generated(record: dict[str, Any]) -> int:
    if record["kind"] == "repair_summary":
        return record.get("generated_tokens", 0)
    return record.get("n_continuation_tokens", 0) if record["kind"] == GUIDED_REFERENCE else 0


def _count(counters: Counters, record: dict[str, Any]) -> None:
    """Counters rebuilt from records alone, so a resumed task counts like an uninterrupted one."""
    counters["tokens_out"] += _generated(record)
    if record["kind"] != "repair_summary":
        counters.keep()
        counters[f"kept_{record['kind']}"] += 1
        return
    for reason, n in record["dropped"].items():
        counters.drop(reason, n)
    counters[f"problems_{record['reason']}"] += 1
    for reason, n in record["breakpoints"].items():
        counters[f"breakpoint_{reason}"] += n
    for method, n in record.get("entropy_methods", {}).items():
        counters[f"entropy_{method}"] += n
