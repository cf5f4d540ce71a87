"""The pipeline config: where to run, how, and one section per stage.

jsonargparse reads these dataclasses, so their docstrings are the CLI help and
``--generate.k 8`` or ``--ingest.paths '[a.jsonl]'`` override a YAML file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from heal_batch.method.pure import PureConfig
from heal_batch.stages.curriculum.stage import CurriculumConfig
from heal_batch.stages.evaluate import EvaluateConfig
from heal_batch.stages.generate import GenerateConfig
from heal_batch.stages.ingest import IngestConfig
from heal_batch.stages.repair.stage import RepairConfig
from heal_batch.stages.score.stage import ScoreConfig
from heal_batch.stages.teacher import TeacherConfig
from heal_batch.stages.train.stage import StudentConfig, TrainStageConfig

EXECUTORS = ("debug", "local", "slurm")


@dataclass
class PipelineConfig:
    """A HEAL pipeline run.

    Args:
        workdir: run folder (store, receipts, manifests, checkpoints, report).
        executor: debug (in-process), local (subprocesses) or slurm (submitit array jobs).
        cluster: Slurm profile, a name in slurm/profiles/ or a YAML path (slurm executor only).
        local_parallelism: how many tasks the local executor runs at once.
        timeout_min: per-task time limit for the local executor (Slurm takes it from the profile).
    """

    workdir: str = "runs/demo"
    executor: str = "local"
    cluster: str | None = None
    local_parallelism: int = 1
    timeout_min: int = 24 * 60
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    repair: RepairConfig = field(default_factory=RepairConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    pure: PureConfig = field(default_factory=PureConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    train: TrainStageConfig = field(default_factory=TrainStageConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def __post_init__(self):
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor {self.executor!r} is not one of {', '.join(EXECUTORS)}")
        if self.pure.reference == "guided" and not (
            self.repair.reference_problems and self.repair.samples_per_reference()
        ):
            raise ValueError(
                "pure.reference: guided needs answer-guided samples of easy problems: set "
                "repair.reference_problems and repair.reference_per_problem (or "
                "guided_per_problem) above 0"
            )
