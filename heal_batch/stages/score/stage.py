"""score: PURE perplexity-uncertainty ratios of repair candidates and of a natural reference sample.

Inputs: one repair shard and the matching generate shard (task i reads both shards i). Every
candidate's hint-free ``text`` is scored teacher-forced under the scoring model (the teacher, or
any model spec such as the student), given the ORIGINAL problem; the steps after ``cut_char`` give
the step perplexities, the last ``\\boxed{}`` the answer uncertainty, and ``pure.score_candidate``
the ratio R. ``reference_samples`` naturally correct trajectories of the generate shard are scored
the same way (all steps) to form the natural reference distribution; repair's
``guided_reference`` samples (answer-guided samples of easy problems) are scored like candidates
and form the guided one (``pure.reference`` picks which curriculum uses). Nothing is dropped
here: lambda is a share of the POOLED candidates, so the keep/drop decision (``pure.decide``) is
taken in curriculum over all shards. Output: candidates and guided references with a ``pure``
block, summaries unchanged, and::

    {"kind": "reference", "id": "arith-s0-0001#s2", "problem_id": "arith-s0-0001",
     "pure": {"ratio": 1.7, "max_step_ppl": 2.9, "answer_nll": 0.52, "step_ppls": [2.1, 2.9],
              "reasoning_tokens": 58, "first_step": 0, "n_steps": 2, "n_tokens": 61,
              "unscored_reason": null, "scorer": "smollm2-135m-instruct", "with_hint": false,
              "context": "teacher", "eps": 0.01}}

A candidate of a built-in problem (``source`` ``builtin/...``) also gets ``"oracle": "derived"``
(or ``shortcut``, ``wrong_step``, ...): ``heal_batch.method.oracle``'s label of its text after the
cut, which curriculum sets PURE's decisions against; counted as ``oracle_<label>``.

PURE's settings are the shared ``pure`` section (``heal_batch.method.pure.PureConfig``): score
uses its ``eps``, curriculum the rest; the section is in both run keys.

    heal-batch stage score --config jobs/demo.yaml --score.scorer runs/demo/checkpoints/.../heal-1
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from heal_batch.method.gear import GearConfig
from heal_batch.method.pure import PureConfig
from heal_batch.method.seeds import stable_seed
from heal_batch.pipeline.chunks import resumable_chunks
from heal_batch.pipeline.contract import Counters, Resources, Task, TaskIO, ref
from heal_batch.records import CANDIDATE_KINDS, GUIDED_REFERENCE
from heal_batch.stages.teacher import TeacherConfig
from heal_batch.store.manifests import Manifest

CONTEXTS = ("teacher", "training")
SCORED_KINDS = (*CANDIDATE_KINDS, GUIDED_REFERENCE)


class HasGear(Protocol):
    """The shared ``repair`` section, as score reads it: its GEAR step settings."""

    @property
    def gear(self) -> GearConfig: ...


@dataclass(frozen=True)
class ScoreConfig:
    """PURE scoring of repair candidates (the keep/drop rule is applied, pooled, in curriculum).

    Steps are the ones GEAR cut: ``repair.gear.step_delimiter`` and ``repair.gear.min_step_tokens``
    (shared with repair, so the two stages cannot disagree about where a step ends); R's epsilon
    is ``pure.eps`` (the shared PURE section).

    Args:
        scorer: ``teacher`` (the teacher section's model) or a model spec (e.g. the student).
        dtype: dtype of a non-teacher scorer (auto, float32, bfloat16); the teacher keeps
            teacher.dtype.
        with_hint: score the continuation with the hint in context instead of the hint-free text.
        context: teacher (the teacher's prompt: system prompt and few-shot examples) or training
            (system prompt and user turn only, as the student is trained).
        reference_samples: naturally correct trajectories per generate shard scored as the
            reference distribution (0 = none).
        chunk_positions: completion positions per LM-head chunk (memory).
        batch_size: sequences per scoring forward pass.
        chunk_records: records per saved chunk (resume granularity).
        seed: seed of the choice of reference trajectories.
    """

    scorer: str = "teacher"
    dtype: str = "auto"
    with_hint: bool = False
    context: str = "teacher"
    reference_samples: int = 32
    chunk_positions: int = 256
    batch_size: int = 8
    chunk_records: int = 64
    seed: int = 0

    def __post_init__(self):
        if self.context not in CONTEXTS:
            raise ValueError(f"score.context {self.context!r} is not one of {', '.join(CONTEXTS)}")
        if self.reference_samples < 0:
            raise ValueError(f"score.reference_samples must be >= 0, got {self.reference_samples}")
        for key in ("chunk_positions", "batch_size", "chunk_records"):
            if getattr(self, key) < 1:
                raise ValueError(f"score.{key} must be >= 1, got {getattr(self, key)}")


class ScoreStage:
    name: ClassVar[str] = "score"
    version: ClassVar[int] = 2  # 2: the oracle label
    upstream: ClassVar[tuple[str, ...]] = ("repair", "generate")
    section: ClassVar[str] = "score"
    resources: ClassVar[Resources] = "array"
    shared: ClassVar[tuple[str, ...]] = ("teacher", "repair", "pure")

    def __init__(
        self, config: ScoreConfig, teacher: TeacherConfig, repair: HasGear, pure: PureConfig
    ):
        """Steps are cut exactly as repair cut them (``repair.gear``); R uses ``pure.eps``."""
        self.config, self.teacher, self.steps, self.eps = config, teacher, repair.gear, pure.eps

    def fingerprint(self) -> str:
        return ""

    def plan(self, upstream: Mapping[str, Manifest]) -> list[Task]:
        n_gen = len(upstream["generate"].tasks)
        tasks = upstream["repair"].tasks
        if len(tasks) != n_gen:
            raise ValueError(
                f"score pairs repair and generate shards 1:1, but repair has {len(tasks)} "
                f"tasks and generate {n_gen}"
            )
        return [
            Task(self.name, t.index, (ref("repair", t.index), ref("generate", t.index)))
            for t in tasks
        ]

    def run(self, task: Task, io: TaskIO) -> Counters:
        records = list(io.read(task.inputs[0]))
        refs = reference_sample(
            io.read(task.inputs[1]), self.config.reference_samples, self.config.seed
        )
        items = [r for r in records if r["kind"] in SCORED_KINDS] + refs
        pure = self._pure_blocks(items, task.index, io)
        counters = Counters()
        for record in records:
            if record["kind"] == GUIDED_REFERENCE:
                record = {**record, "pure": pure[(record["kind"], record["id"])]}
                record |= oracle_field(record)  # labelled, not counted: it is no candidate
                counters["guided_references"] += 1
                counters["tokens_in"] += record["pure"]["n_tokens"]
            elif record["kind"] in CANDIDATE_KINDS:
                record = {**record, "pure": pure[(record["kind"], record["id"])]}
                record |= oracle_field(record, counters)
                counters.keep()
                _count_pure(counters, record["pure"])
            else:
                counters["passed_" + record["kind"]] += 1
            io.write(record)
        for r in refs:
            io.write(
                {
                    "kind": "reference",
                    "id": r["id"],
                    "problem_id": r["problem_id"],
                    "pure": pure[("reference", r["id"])],
                }
            )
            counters["references"] += 1
            counters["tokens_in"] += pure[("reference", r["id"])]["n_tokens"]
        return counters

    def _pure_blocks(self, items: list[dict[str, Any]], index: int, io: TaskIO) -> dict:
        """(kind, id) -> pure block, computed in saved chunks (a rerun resumes)."""
        scorer = functools.cache(self._scorer)
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for _, done in resumable_chunks(
            io,
            items,
            self.config.chunk_records,
            lambda chunk: scorer().score(chunk),
            "records",
            lambda done: sum(d["pure"]["n_tokens"] for d in done),
        ):
            out.update({(d["kind"], d["id"]): d["pure"] for d in done})
        return out

    def _scorer(self):
        """The exact scorer (loaded only when a chunk is not saved yet)."""
        from heal_batch.stages.score.model import PureScorer

        return PureScorer(self.config, self.teacher, self.steps, self.eps)


def reference_sample(trajectories, n: int, seed: int) -> list[dict[str, Any]]:
    """Up to ``n`` naturally correct trajectories, chosen by a stable hash of their ids, as
    ``kind: reference`` items (the order does not depend on the shard's record order)."""
    correct = [{**t, "kind": "reference"} for t in trajectories if t["correct"]]
    correct.sort(key=lambda t: stable_seed(seed, "reference", t["id"]))
    return correct[:n]


def oracle_field(candidate: dict[str, Any], counters: Counters | None = None) -> dict[str, str]:
    """``{"oracle": label}`` for a candidate of a built-in problem (counted in ``counters`` when
    given), else ``{}``."""
    from heal_batch.method.oracle import is_builtin, oracle_label

    if not is_builtin(candidate.get("source")):
        return {}
    after = candidate["text"][candidate["cut_char"] :]
    label = oracle_label(after, candidate["reference_answer"], candidate["problem"])
    if counters is not None:
        counters[f"oracle_{label}"] += 1
    return {"oracle": label}


def _count_pure(counters: Counters, pure: dict[str, Any]) -> None:
    counters["tokens_in"] += pure["n_tokens"]  # teacher-forced tokens scored (throughput)
    if pure["unscored_reason"]:
        counters[f"unscored_{pure['unscored_reason']}"] += 1
    else:
        counters["scored"] += 1
