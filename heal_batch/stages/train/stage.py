"""train-1, train-2, train-3, train-baselines: SFT of the student on the curriculum's sets.

Inputs: one curriculum set shard (chat ``messages`` records) and where training starts: the base
student (``student.model``) for train-1 and the baselines, the previous stage's checkpoint record
for train-2 and train-3. Output: one checkpoint record per task (rank 0 writes it), e.g.::

    {"kind": "checkpoint", "id": "heal-2", "set": "heal-2", "base": "heal-1",
     "path": "<workdir>/checkpoints/<run_key>/heal-2/hf",
     "files": {"model.safetensors": "ab12…", …}, "steps": 12, "final_loss": 0.83,
     "train_log": "<workdir>/checkpoints/<run_key>/heal-2/train_log.jsonl",
     "init_path": "<workdir>/checkpoints/<train-1 key>/heal-1/hf", "examples": 96,
     "world_size": 1, …}

Stages and tasks: train-N has one task, set heal-N, epochs ``train.epochs[N-1]``;
train-baselines has one task per baseline set (curriculum tasks 3, 4, …), each from the base
student; with ``baseline_budget: heal_steps`` a baseline trains as many optimizer steps as
stages I-III together (counted on their sets at this job's world size and batch settings).

Training is ``heal_batch.training.train_sft`` (DeepSpeed; one process locally, every rank of a
multi-rank job with ``resources = "distributed"``; rank and world size come from ``TaskIO``). The
out dir ``<workdir>/checkpoints/<run_key>/<set>/`` depends only on the run and the set, so a
requeued or re-run task resumes from its last DeepSpeed checkpoint there; a finished one is only
verified.
A stage's run key covers only its own training settings (``StageTraining``), so changing stage
III's epochs retrains stage III alone (and what reads it).

    heal-batch stage train-1 --config jobs/demo.yaml --train.max_steps 4
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from heal_batch.pipeline.contract import Counters, Resources, Task, TaskIO, ref
from heal_batch.stages.curriculum.sets import HEAL_SETS
from heal_batch.stages.train.settings import StudentConfig, TrainStageConfig
from heal_batch.store.manifests import Manifest
from heal_batch.training.config import TrainConfig


@dataclass(frozen=True)
class StageTraining:
    """What one train stage's run key covers: its TrainConfig and, for baselines on the
    heal_steps budget, the TrainConfigs of the HEAL stages whose steps it matches."""

    train: TrainConfig
    budget_from: tuple[TrainConfig, ...] = ()


class _TrainStage:
    """The four train stages differ only in the class attributes below (no hooks to override):
    ``heal_stage`` N trains set heal-N from the previous stage's checkpoint (the student for
    N = 1); ``heal_stage = None`` trains every baseline set from the student."""

    version: ClassVar[int] = 1
    section: ClassVar[str] = "train"
    shared: ClassVar[tuple[str, ...]] = ("student",)
    resources: ClassVar[Resources] = "distributed"
    name: ClassVar[str]
    upstream: ClassVar[tuple[str, ...]]
    heal_stage: ClassVar[int | None]

    def __init__(self, config: TrainStageConfig, student: StudentConfig):
        self.settings, self.student = config, student
        self.config = stage_training(config, self.heal_stage)

    def fingerprint(self) -> str:
        return ""

    def plan(self, upstream: Mapping[str, Manifest]) -> list[Task]:
        if self.heal_stage is None:
            return _baseline_tasks(self.name, upstream["curriculum"], bool(self.config.budget_from))
        inputs = (ref("curriculum", self.heal_stage - 1),)
        if self.heal_stage > 1:
            inputs += (ref(f"train-{self.heal_stage - 1}", 0),)
        return [Task(self.name, 0, inputs)]

    def run(self, task: Task, io: TaskIO) -> Counters:
        records = list(io.read(task.inputs[0]))
        set_name = _set_name(records, task, self.name)
        init_path, base = self._start(task, io)
        cfg = self._train_config(task, io, init_path)
        out_dir = io.checkpoints(set_name)
        from heal_batch.training import train_sft

        result = train_sft(records, init_path, out_dir, cfg)
        counters = Counters()
        counters.keep()
        counters.update(examples=len(records), steps=result.steps)
        counters["resumed_from_step"] += result.resumed_from_step
        if io.is_main:
            io.write(
                checkpoint_record(
                    set_name, base, init_path, out_dir, result, cfg, len(records), io.world_size
                )
            )
        return counters

    def _start(self, task: Task, io: TaskIO) -> tuple[str, str]:
        """(HF directory training starts from, what it is: student spec or previous set)."""
        if self.heal_stage is not None and self.heal_stage > 1:
            record = read_checkpoint(io, task.inputs[1])
            return record["path"], record["set"]
        from heal_batch.backends.models import resolve_model

        return resolve_model(self.student.model), self.student.model

    def _train_config(self, task: Task, io: TaskIO, init_path: str) -> TrainConfig:
        """The stage's TrainConfig; a heal_steps baseline's max_steps is counted here."""
        if not self.config.budget_from:
            return self.config.train
        steps = sum(
            planned_steps(list(io.read(address)), init_path, cfg, io.world_size)
            for address, cfg in zip(task.inputs[1:], self.config.budget_from, strict=True)
        )
        return dataclasses.replace(self.config.train, max_steps=steps)


def stage_training(settings: TrainStageConfig, heal_stage: int | None) -> StageTraining:
    """What the run key of HEAL stage N (or of the baselines, for None) covers."""
    if heal_stage is not None:
        return StageTraining(settings.for_stage(heal_stage))
    heal = ()
    if settings.baseline_budget == "heal_steps":
        heal = tuple(settings.for_stage(s) for s in (1, 2, 3))
    return StageTraining(settings.for_baseline(), heal)


def _baseline_tasks(name: str, curriculum: Manifest, budget: bool) -> list[Task]:
    """One task per baseline set (curriculum tasks after the HEAL sets), each from the student;
    a heal_steps budget also reads the HEAL sets to count their steps."""
    n_heal = len(HEAL_SETS)
    heal = tuple(ref("curriculum", i) for i in range(n_heal)) if budget else ()
    baselines = [t.index for t in curriculum.tasks if t.index >= n_heal]
    return [Task(name, j, (ref("curriculum", i), *heal)) for j, i in enumerate(baselines)]


class Train1Stage(_TrainStage):
    name: ClassVar[str] = "train-1"
    upstream: ClassVar[tuple[str, ...]] = ("curriculum",)
    heal_stage: ClassVar[int | None] = 1


class Train2Stage(_TrainStage):
    name: ClassVar[str] = "train-2"
    upstream: ClassVar[tuple[str, ...]] = ("curriculum", "train-1")
    heal_stage: ClassVar[int | None] = 2


class Train3Stage(_TrainStage):
    name: ClassVar[str] = "train-3"
    upstream: ClassVar[tuple[str, ...]] = ("curriculum", "train-2")
    heal_stage: ClassVar[int | None] = 3


class TrainBaselinesStage(_TrainStage):
    name: ClassVar[str] = "train-baselines"
    upstream: ClassVar[tuple[str, ...]] = ("curriculum",)
    heal_stage: ClassVar[int | None] = None


def planned_steps(
    records: list[dict], tokenizer_dir: str, cfg: TrainConfig, world_size: int
) -> int:
    """Optimizer steps train_sft takes for these records and settings at this world size."""
    if cfg.max_steps is not None:
        return cfg.max_steps
    from transformers import AutoTokenizer

    from heal_batch.training.batches import BatchPlan
    from heal_batch.training.packing import pack_samples
    from heal_batch.training.tokenize import tokenize_records

    samples, _ = tokenize_records(
        records, AutoTokenizer.from_pretrained(tokenizer_dir), cfg.max_seq_len
    )
    rows = pack_samples(samples, cfg.max_seq_len, cfg.seed)
    plan = BatchPlan(len(rows), cfg.seed, world_size, cfg.per_device_batch, cfg.grad_accum)
    return plan.total_steps(cfg.epochs, None)


def read_checkpoint(io: TaskIO, address: str) -> dict[str, Any]:
    """The one checkpoint record of a train stage's shard, with its model folder present."""
    records = [r for r in io.read(address) if r.get("kind") == "checkpoint"]
    if len(records) != 1:
        raise ValueError(f"shard {address}: expected one checkpoint record, found {len(records)}")
    if not Path(records[0]["path"]).is_dir():
        raise FileNotFoundError(
            f"checkpoint {records[0]['set']!r} (shard {address[:12]}): model folder "
            f"{records[0]['path']} is missing; re-run the stage that wrote it"
        )
    return records[0]


def checkpoint_record(
    set_name, base, init_path, out_dir: Path, result, cfg: TrainConfig, n: int, world_size: int
) -> dict:
    """The checkpoint record of a finished training task (see manifests/checkpoint.schema.json)."""
    loss = result.final_loss
    return {
        "kind": "checkpoint",
        "id": set_name,
        "set": set_name,
        "path": str(Path(result.hf_dir).resolve()),
        "files": dict(result.files),
        "steps": result.steps,
        "final_loss": loss if loss is not None and math.isfinite(loss) else None,
        "train_log": str(out_dir / "train_log.jsonl"),
        "base": base,
        "init_path": str(init_path),
        "examples": n,
        "resumed_from_step": result.resumed_from_step,
        "tokens_per_s": result.tokens_per_s,
        "nonpad_share": result.nonpad_share,
        "world_size": world_size,
        "train_config": cfg.to_dict(),
    }


def _set_name(records: list[dict], task: Task, stage: str) -> str:
    names = {r.get("set") for r in records}
    if not records:
        raise ValueError(
            f"{stage} task {task.index}: its curriculum set is empty, nothing to train on; "
            "see the curriculum manifest's dropped_* counters"
        )
    if len(names) != 1 or None in names:
        raise ValueError(
            f"{stage} task {task.index}: records of several sets {sorted(map(str, names))}"
        )
    return names.pop()
