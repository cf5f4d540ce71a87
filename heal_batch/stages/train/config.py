"""The settings of the train stages: the student they start from and how each stage trains.

``TrainStageConfig`` is the pipeline's ``train`` section: PACE epochs per HEAL stage, the baselines'
budget, and the TrainConfig fields passed through to ``heal_batch.training``; ``for_stage(N)`` and
``for_baseline()`` give the TrainConfig of one stage. ``StudentConfig`` is the shared ``student``
section (also the base row of ``evaluate``).

    TrainStageConfig(max_steps=2).for_stage(3).epochs   # 2 (paper: 5, 2, 2 epochs)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from heal_batch.stages.curriculum.sets import HEAL_SETS
from heal_batch.training.config import TrainConfig

BUDGETS = ("heal_steps", "epochs")
# TrainConfig fields that TrainStageConfig passes through unchanged.
PASSED = (
    "lr", "per_device_batch", "grad_accum", "max_seq_len", "warmup_ratio", "schedule", "seed",
    "deepspeed", "dtype", "save_every_steps", "keep_checkpoints", "keep_ds_checkpoint",
    "log_every_steps", "log_tensorboard", "weight_decay", "max_grad_norm", "attn_implementation",
    "gradient_checkpointing",
)  # fmt: skip


@dataclass(frozen=True)
class StudentConfig:
    """The student that training starts from (shared by the train stages).

    Args:
        model: smollm2-135m-instruct (the demo model), a local HF model directory, or a hub name
            available offline. Its tokenizer and chat template are used and saved with every checkpoint.
    """

    model: str = "smollm2-135m-instruct"


@dataclass(frozen=True)
class TrainStageConfig:
    """SFT of the student on the PACE sets (train-1, train-2, train-3) and the baselines.

    Defaults follow the paper's recipe (5, 2, 2 epochs at lr 1e-5; global batch 8 on 8 GPUs).
    One SmolLM2-135M step on a 2-core CPU takes about a minute, so jobs/demo.yaml caps every
    stage at a few steps with max_steps.

    Args:
        epochs: epochs of HEAL stages I, II, III, each starting from the previous checkpoint.
        max_steps: optimizer steps of every HEAL stage; overrides epochs (null: use epochs).
        baseline_budget: heal_steps (a baseline trains as many optimizer steps as stages I-III
            together) or epochs (baseline_epochs passes over its set).
        baseline_epochs: epochs of each baseline when baseline_budget is epochs.
        lr: peak learning rate (AdamW), restarted per stage.
        per_device_batch: packed rows per micro-batch on each rank.
        grad_accum: micro-batches per optimizer step on each rank.
        max_seq_len: tokens per packed row; longer samples are truncated.
        warmup_ratio: share of each stage's steps spent warming the lr up from 0.
        schedule: lr decay after warm-up: cosine, linear or constant_with_warmup.
        seed: sample order, packing ties and torch RNG.
        deepspeed: zero2, zero3 (heal_batch/training/deepspeed/) or a DeepSpeed JSON path.
        dtype: auto (bf16 on GPU, fp32 on CPU), bf16 or fp32.
        save_every_steps: resumable checkpoint every N optimizer steps (0: never).
        keep_checkpoints: resumable checkpoints kept on disk.
        keep_ds_checkpoint: keep the DeepSpeed checkpoint after the final HF directory is written.
        log_every_steps: a train_log.jsonl line every N optimizer steps.
        log_tensorboard: also log to TensorBoard (skipped with a warning if not installed).
        weight_decay: AdamW weight decay.
        max_grad_norm: gradient clipping norm (0: none).
        attn_implementation: sdpa, eager or flash_attention_2 (GPU).
        gradient_checkpointing: recompute activations in backward (saves memory).
    """

    epochs: list[int] = field(default_factory=lambda: [5, 2, 2])
    max_steps: int | None = None
    baseline_budget: Literal["heal_steps", "epochs"] = "heal_steps"
    baseline_epochs: int = 9
    lr: float = 1e-5
    per_device_batch: int = 1
    grad_accum: int = 1
    max_seq_len: int = 4096
    warmup_ratio: float = 0.03
    schedule: Literal["cosine", "linear", "constant_with_warmup"] = "cosine"
    seed: int = 0
    deepspeed: str = "zero2"
    dtype: Literal["auto", "bf16", "fp32"] = "auto"
    save_every_steps: int = 50
    keep_checkpoints: int = 1
    keep_ds_checkpoint: bool = False
    log_every_steps: int = 1
    log_tensorboard: bool = False
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    attn_implementation: str = "sdpa"
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        if len(self.epochs) != len(HEAL_SETS):
            raise ValueError(f"train.epochs needs one value per HEAL stage (3), got {self.epochs}")
        if self.baseline_budget not in BUDGETS:
            raise ValueError(
                f"train.baseline_budget {self.baseline_budget!r} is not one of {', '.join(BUDGETS)}"
            )
        for stage in (1, 2, 3):
            self.for_stage(stage)  # TrainConfig checks the values
        self.for_baseline()

    def for_stage(self, stage: int) -> TrainConfig:
        """The TrainConfig of HEAL stage 1, 2 or 3."""
        return self._train(self.epochs[stage - 1], self.max_steps)

    def for_baseline(self) -> TrainConfig:
        """The TrainConfig of a baseline (its max_steps is set at run time for heal_steps)."""
        return self._train(self.baseline_epochs, None)

    def _train(self, epochs: int, max_steps: int | None) -> TrainConfig:
        return TrainConfig(
            epochs=epochs, max_steps=max_steps, **{k: getattr(self, k) for k in PASSED}
        )
