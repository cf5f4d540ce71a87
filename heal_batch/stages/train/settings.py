"""The settings of the train stages: the student they start from and how each stage trains.

``TrainStageConfig`` is the pipeline's ``train`` section: PACE epochs per HEAL stage, the baselines'
budget, and the TrainConfig fields passed through to ``heal_batch.training``; ``for_stage(N)`` and
``for_baseline()`` give the TrainConfig of one stage. ``StudentConfig`` is the shared ``student``
section (also the base row of ``evaluate``).

    TrainStageConfig(max_steps=2).for_stage(3).epochs   # 2 (paper: 5, 2, 2 epochs)
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

from heal_batch.stages.curriculum.sets import HEAL_SETS
from heal_batch.training.config import TrainConfig

BUDGETS = ("heal_steps", "epochs")


@dataclass(frozen=True)
class StudentConfig:
    """The student that training starts from (shared by the train stages).

    Args:
        model: smollm2-135m-instruct (the demo model), a local HF model directory, or a hub name
            available offline. Its tokenizer and chat template are used and saved with every
            checkpoint.
    """

    model: str = "smollm2-135m-instruct"


@dataclass(frozen=True)
class TrainStageConfig(TrainConfig):
    """SFT of the student on the PACE sets (train-1, train-2, train-3) and the baselines.

    Every TrainConfig field (heal_batch.training.config: lr, batch, max_seq_len, deepspeed, ...)
    is a field here too and passes through unchanged; this section adds PACE's epochs per stage
    and the baselines' budget. Defaults follow the paper's recipe (5, 2, 2 epochs at lr 1e-5;
    global batch 8 on 8 GPUs). One SmolLM2-135M step on a 2-core CPU takes about a minute, so
    jobs/demo.yaml caps every stage at a few steps with max_steps.

    Args:
        epochs: epochs of HEAL stages I, II, III, each starting from the previous checkpoint.
        max_steps: optimizer steps of every HEAL stage; overrides epochs (null: use epochs).
        baseline_budget: heal_steps (a baseline trains as many optimizer steps as stages I-III
            together) or epochs (baseline_epochs passes over its set).
        baseline_epochs: epochs of each baseline when baseline_budget is epochs.
    """

    epochs: list[int] = field(default_factory=lambda: [5, 2, 2])  # type: ignore[assignment]
    baseline_budget: Literal["heal_steps", "epochs"] = "heal_steps"
    baseline_epochs: int = 9

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
        passed = {f.name: getattr(self, f.name) for f in fields(TrainConfig)}
        return TrainConfig(**{**passed, "epochs": epochs, "max_steps": max_steps})
