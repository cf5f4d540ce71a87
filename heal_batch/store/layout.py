"""Where everything lives inside a work directory (design.md §3).

    <workdir>/store/<aa>/<sha256>.jsonl.zst          immutable shards
    <workdir>/runs/<stage>/<run_key>/tasks/<i>.json    one receipt per task
    <workdir>/runs/<stage>/<run_key>/logs/             executor logs
    <workdir>/runs/<stage>/<run_key>/work/<i>/         a task's private scratch (resume chunks, checkpoints)
    <workdir>/manifests/<stage>/<run_key>.json         the stage run's manifest
    <workdir>/refs/<stage>                             the run key the current config points at
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    workdir: Path

    def __post_init__(self):
        object.__setattr__(self, "workdir", Path(self.workdir))

    @property
    def store(self) -> Path:
        return self.workdir / "store"

    def run_dir(self, stage: str, key: str) -> Path:
        return self.workdir / "runs" / stage / key

    def receipt(self, stage: str, key: str, index: int) -> Path:
        return self.run_dir(stage, key) / "tasks" / f"{index}.json"

    def logs(self, stage: str, key: str) -> Path:
        return self.run_dir(stage, key) / "logs"

    def scratch(self, stage: str, key: str, index: int) -> Path:
        return self.run_dir(stage, key) / "work" / str(index)

    def manifest(self, stage: str, key: str) -> Path:
        return self.workdir / "manifests" / stage / f"{key}.json"

    def ref(self, stage: str) -> Path:
        return self.workdir / "refs" / stage

    def read_ref(self, stage: str) -> str | None:
        path = self.ref(stage)
        return path.read_text().strip() if path.is_file() else None
