"""Training metrics to out_dir/train_log.jsonl and, if asked for and installed, TensorBoard.

One JSON object per logged optimizer step:
    {"step": 12, "epoch": 0, "loss": 1.93, "lr": 9.6e-06, "grad_norm": 0.81,
     "tokens": 16384, "tokens_per_s": 2210.4, "elapsed_s": 88.1}
`tokens` counts the real (non-padding) tokens of the step over all ranks; `loss` is the mean
over the step's assistant tokens over all ranks. Only rank 0 writes. On resume, lines after the
resumed step (written after the last checkpoint by the killed run) are dropped first, so the file
never holds a step twice; so is a last line the kill cut short.

    log = TrainLogger(out_dir, tensorboard=False, resume_step=0)
    log.write({"step": 1, "loss": 2.0, ...}); log.close()
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

LOG_FILE = "train_log.jsonl"
_log = logging.getLogger(__name__)


class TrainLogger:
    def __init__(self, out_dir: Path, tensorboard: bool, resume_step: int) -> None:
        self.path = out_dir / LOG_FILE
        _truncate_after(self.path, resume_step)
        self._fh = self.path.open("a")
        self._tb = _tensorboard_writer(out_dir / "tensorboard") if tensorboard else None

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, sort_keys=True) + "\n")
        self._fh.flush()
        if self._tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float):
                    self._tb.add_scalar(f"train/{key}", value, record["step"])

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()


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


def _tensorboard_writer(folder: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch raises ImportError when the tensorboard package is absent
        _log.warning("log_tensorboard=True but tensorboard is not installed; logging to JSONL only")
        return None
    return SummaryWriter(log_dir=str(folder))
