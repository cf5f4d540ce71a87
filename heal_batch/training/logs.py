"""Training metrics to out_dir/train_log.jsonl and, if asked for and installed, other trackers.

One JSON object per logged optimizer step:
    {"step": 12, "epoch": 0, "loss": 1.93, "lr": 9.6e-06, "grad_norm": 0.81,
     "tokens": 16384, "tokens_per_s": 2210.4, "elapsed_s": 88.1}
`tokens` counts the real (non-padding) tokens of the step over all ranks; `loss` is the mean
over the step's assistant tokens over all ranks. Only rank 0 writes. On resume, lines after the
resumed step (written after the last checkpoint by the killed run) are dropped first, so the file
never holds a step twice; so is a last line the kill cut short.

Each record's numbers also go, as ``train/<key>`` at its step, to the trackers $HEAL_TRACKERS
names (heal_batch.tracking: TensorBoard under out_dir/tensorboard, trackio), and to TensorBoard
when ``tensorboard=True`` (TrainConfig.log_tensorboard).

    log = TrainLogger(out_dir, tensorboard=False, resume_step=0)
    log.write({"step": 1, "loss": 2.0, ...}); log.close()
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from heal_batch.tracking import open_trackers, tracker_names

LOG_FILE = "train_log.jsonl"


class TrainLogger:
    def __init__(
        self, out_dir: Path, tensorboard: bool, resume_step: int, config: dict | None = None
    ) -> None:
        self.path = out_dir / LOG_FILE
        _truncate_after(self.path, resume_step)
        self._fh = self.path.open("a")
        names = tracker_names()
        names = (*names, "tensorboard") if tensorboard and "tensorboard" not in names else names
        self._trackers = open_trackers(names, out_dir, _run_name(out_dir), config)

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, sort_keys=True) + "\n")
        self._fh.flush()
        metrics = {f"train/{k}": v for k, v in record.items() if k != "step"}
        self._trackers.log(metrics, record["step"])

    def close(self) -> None:
        self._fh.close()
        self._trackers.close()


def read_log(out_dir: Path) -> list[dict[str, Any]]:
    """The log's entries; a last line cut short by a killed run is ignored."""
    path = out_dir / LOG_FILE
    return [entry for _, entry in _entries(path)] if path.is_file() else []


def _truncate_after(path: Path, step: int) -> None:
    if path.is_file():
        kept = [line for line, entry in _entries(path) if entry["step"] <= step]
        path.write_text("".join(line + "\n" for line in kept))


def _entries(path: Path) -> list[tuple[str, dict[str, Any]]]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    out = []
    for number, line in enumerate(lines, 1):
        try:
            out.append((line, json.loads(line)))
        except json.JSONDecodeError:
            if number < len(lines):
                raise ValueError(f"{path}:{number}: not a JSON line") from None
    return out


def _run_name(out_dir: Path) -> str:
    """The trackers' run name: <set>-<run key prefix> for <workdir>/checkpoints/<run_key>/<set>."""
    path = Path(out_dir).resolve()
    return f"{path.name}-{path.parent.name[:12]}"
