"""score: PURE perplexity-uncertainty ratios of repair candidates and of a natural reference sample.

Inputs: one repair shard and the matching generate shard (task i reads both shards i). Every
candidate's hint-free ``text`` is scored teacher-forced under the scoring model (the teacher, or
any model spec such as the student), given the ORIGINAL problem; the steps after ``cut_char`` give
the step perplexities, the last ``\\boxed{}`` the answer uncertainty, and ``pure.score_candidate``
the ratio R. ``reference_samples`` naturally correct trajectories of the generate shard are scored
the same way (all steps) to form the reference distribution. Nothing is dropped here: lambda is a
share of the POOLED candidates, so the keep/drop decision (``pure.decide``) is taken in
curriculum over all shards. Output: candidates with a ``pure`` block, summaries unchanged, and::

    {"kind": "reference", "id": "arith-s0-0001#s2", "problem_id": "arith-s0-0001",
     "pure": {"ratio": 1.7, "max_step_ppl": 2.9, "answer_nll": 0.52, "step_ppls": [2.1, 2.9],
              "reasoning_tokens": 58, "first_step": 0, "n_steps": 2, "n_tokens": 61,
              "unscored_reason": null, "scorer": "smollm2-135m-instruct", "with_hint": false,
              "context": "teacher", "eps": 0.01}}

    heal-batch stage score --config jobs/demo.yaml --score.scorer runs/demo/checkpoints/.../heal-1
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from heal_batch.pipeline import failpoints
from heal_batch.method.seeds import stable_seed
from heal_batch.pipeline.progress import report as report_progress
from heal_batch.records import CANDIDATE_KINDS
from heal_batch.pipeline.contract import Counters, Task, TaskIO, ref, Resources
from heal_batch.pipeline.chunks import ChunkProgress
from heal_batch.stages.repair.stage import RepairConfig
from heal_batch.stages.teacher import TeacherConfig
from heal_batch.store.manifests import Manifest

CONTEXTS = ("teacher", "training")


@dataclass(frozen=True)
class ScoreConfig:
    """PURE scoring of repair candidates (the keep/drop rule is applied, pooled, in curriculum).

    Steps are the ones GEAR cut: ``repair.gear.step_delimiter`` and ``repair.gear.min_step_tokens``
    (shared with repair, so the two stages cannot disagree about where a step ends).

    Args:
        scorer: ``teacher`` (the teacher section's model) or a model spec (e.g. the student).
        dtype: dtype of a non-teacher scorer (auto, float32, bfloat16); the teacher keeps teacher.dtype.
        with_hint: score the continuation with the hint in context instead of the hint-free text.
        context: teacher (the teacher's prompt: system prompt and few-shot examples) or training
            (system prompt and user turn only, as the student is trained).
        eps: epsilon in R = max step PPL / (exp(U) + eps).
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
    eps: float = 0.01
    reference_samples: int = 32
    chunk_positions: int = 256
    batch_size: int = 8
    chunk_records: int = 64
    seed: int = 0

    def __post_init__(self):
        if self.context not in CONTEXTS:
            raise ValueError(f"score.context {self.context!r} is not one of {', '.join(CONTEXTS)}")
        if self.eps < 0 or self.reference_samples < 0:
            raise ValueError("score.eps and score.reference_samples must be >= 0")
        for key in ("chunk_positions", "batch_size", "chunk_records"):
            if getattr(self, key) < 1:
                raise ValueError(f"score.{key} must be >= 1, got {getattr(self, key)}")


class ScoreStage:
    name: ClassVar[str] = "score"
    version: ClassVar[int] = 1
    upstream: ClassVar[tuple[str, ...]] = ("repair", "generate")
    section: ClassVar[str] = "score"
    resources: ClassVar[Resources] = "array"
    shared: ClassVar[tuple[str, ...]] = ("teacher", "repair")

    def __init__(self, config: ScoreConfig, teacher: TeacherConfig, repair: RepairConfig):
        """Steps are cut exactly as repair cut them: ``repair.gear``'s delimiter and minimum."""
        self.config, self.teacher, self.steps = config, teacher, repair.gear

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
        items = [r for r in records if r["kind"] in CANDIDATE_KINDS] + refs
        pure = self._pure_blocks(items, task.index, io)
        counters = Counters()
        for record in records:
            if record["kind"] in CANDIDATE_KINDS:
                record = {**record, "pure": pure[(record["kind"], record["id"])]}
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
        return counters

    def _pure_blocks(self, items: list[dict[str, Any]], index: int, io: TaskIO) -> dict:
        """(kind, id) -> pure block, computed in saved chunks (a rerun resumes)."""
        size = self.config.chunk_records
        progress = ChunkProgress(io.scratch)
        worker = None
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for number, start in enumerate(range(0, len(items), size)):
            done = progress.load(number)
            if done is None:
                from heal_batch.stages.score.model import PureScorer

                worker = worker or PureScorer(self.config, self.teacher, self.steps)
                done = worker.score(items[start : start + size])
                progress.save(number, done)
                failpoints.hit(self.name, index, "chunk")
            out.update({(d["kind"], d["id"]): d["pure"] for d in done})
            report_progress(io.scratch, min(start + size, len(items)), len(items), "records")
        return out


def reference_sample(trajectories, n: int, seed: int) -> list[dict[str, Any]]:
    """Up to ``n`` naturally correct trajectories, chosen by a stable hash of their ids, as
    ``kind: reference`` items (the order does not depend on the shard's record order)."""
    correct = [{**t, "kind": "reference"} for t in trajectories if t["correct"]]
    correct.sort(key=lambda t: stable_seed(seed, "reference", t["id"]))
    return correct[:n]


def _count_pure(counters: Counters, pure: dict[str, Any]) -> None:
    if pure["unscored_reason"]:
        counters[f"unscored_{pure['unscored_reason']}"] += 1
    else:
        counters["scored"] += 1
