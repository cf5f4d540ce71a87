"""Where everything lives inside a work directory (design.md §3).

    <workdir>/store/<aa>/<sha256>.jsonl.zst          immutable shards
    <workdir>/runs/<stage>/<run_key>/tasks/<i>.json    one receipt per task
    <workdir>/runs/<stage>/<run_key>/started/<i>.json  who started the task (host, pid)
    <workdir>/runs/<stage>/<run_key>/logs/             executor logs
    <workdir>/runs/<stage>/<run_key>/work/<i>/         a task's scratch (resume chunks, checkpoints)
    <workdir>/manifests/<stage>/<run_key>.json         the stage run's manifest
    <workdir>/refs/<stage>                             the run key the current config points at
    <workdir>/checkpoints/<run_key>/<set>/             a training task's checkpoints and HF model
    <workdir>/.lock                                    held by the one launcher working here

Every method checks the names it joins (:mod:`heal_batch.store.names`): a stage must be a
registered stage, a run key 64 lowercase hex digits, an index an integer >= 0. A bad name raises
:class:`~heal_batch.store.names.RunFolderError` instead of becoming a path outside the workdir.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from heal_batch.store.names import (
    RunFolderError,
    check_index,
    check_key,
    check_plain,
    check_stage,
)


@dataclass(frozen=True)
class Layout:
    workdir: Path

    def __post_init__(self):
        object.__setattr__(self, "workdir", Path(self.workdir))

    @property
    def store(self) -> Path:
        return self.workdir / "store"

    @property
    def lock(self) -> Path:
        return self.workdir / ".lock"

    def run_dir(self, stage: str, key: str) -> Path:
        return self.workdir / "runs" / check_stage(stage) / check_key(key)

    def receipt(self, stage: str, key: str, index: int) -> Path:
        return self.run_dir(stage, key) / "tasks" / f"{check_index(index)}.json"

    def start_marker(self, stage: str, key: str, index: int) -> Path:
        return self.run_dir(stage, key) / "started" / f"{check_index(index)}.json"

    def logs(self, stage: str, key: str) -> Path:
        return self.run_dir(stage, key) / "logs"

    def scratch(self, stage: str, key: str, index: int) -> Path:
        return self.run_dir(stage, key) / "work" / str(check_index(index))

    def checkpoints(self, key: str, name: str) -> Path:
        """A training run's model folder: ``<workdir>/checkpoints/<run_key>/<name>/``."""
        return self.workdir / "checkpoints" / check_key(key) / check_plain(name, "checkpoint set")

    def manifest(self, stage: str, key: str) -> Path:
        return self.workdir / "manifests" / check_stage(stage) / f"{check_key(key)}.json"

    def ref(self, stage: str) -> Path:
        return self.workdir / "refs" / check_stage(stage)

    def read_ref(self, stage: str) -> str | None:
        """The run key ``refs/<stage>`` holds, None without one; anything but a run key raises
        RunFolderError naming the file."""
        path = self.ref(stage)
        if not path.is_file():
            return None
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        try:
            return check_key(text, path)
        except RunFolderError as exc:
            raise RunFolderError(f"{exc}; `heal-batch run` with your config rewrites it") from None
