"""Stage registry, in DAG order.

Every stage module is light to import (heavy imports live in ``run``).
"""

from __future__ import annotations

from heal_batch.pipeline.contract import Stage
from heal_batch.stages.curriculum.stage import CurriculumStage
from heal_batch.stages.evaluate import EvaluateStage
from heal_batch.stages.generate import GenerateStage
from heal_batch.stages.ingest import IngestStage
from heal_batch.stages.repair.stage import RepairStage
from heal_batch.stages.score.stage import ScoreStage
from heal_batch.stages.train.stage import Train1Stage, Train2Stage, Train3Stage, TrainBaselinesStage

# Adding a stage: its module under heal_batch/stages/ and one line here, in DAG order.
_CLASSES: tuple[type[Stage], ...] = (
    IngestStage,
    GenerateStage,
    RepairStage,
    ScoreStage,
    CurriculumStage,
    Train1Stage,
    Train2Stage,
    Train3Stage,
    TrainBaselinesStage,
    EvaluateStage,
)
STAGES: dict[str, type[Stage]] = {cls.name: cls for cls in _CLASSES}


def downstream_of(names: set[str]) -> list[str]:
    """The given stages plus every stage that (transitively) reads them, in DAG order."""
    closure = set(names)
    for name, cls in STAGES.items():
        if set(cls.upstream) & closure:
            closure.add(name)
    return [name for name in STAGES if name in closure]


def upstream_closure(names: list[str]) -> list[str]:
    """The given stages plus everything they (transitively) read, in DAG order."""
    needed = set(names)
    for name in reversed(list(STAGES)):
        if name in needed:
            needed.update(STAGES[name].upstream)
    return [name for name in STAGES if name in needed]


def registered(name: object, source: object = None) -> str:
    """``name`` if it is a stage of this pipeline, else a RunFolderError naming ``source`` (the
    run-folder file it was read from) and the valid stages."""
    from heal_batch.store.names import RunFolderError

    if not isinstance(name, str) or name not in STAGES:
        where = f"{source}: " if source is not None else ""
        raise RunFolderError(
            f"{where}stage {name!r} is not a stage of this pipeline; valid "
            f"stages: {', '.join(STAGES)}"
        )
    return name
