"""train_log.jsonl across a kill: later steps and a cut-short last line are dropped on resume."""

from __future__ import annotations

import json

import pytest

from heal_batch.training.logs import LOG_FILE, TrainLogger, read_log


def test_resume_drops_steps_after_the_checkpoint_and_a_partial_line(tmp_path):
    lines = [json.dumps({"step": s, "loss": 1.0 / s}) for s in (1, 2, 3)]
    (tmp_path / LOG_FILE).write_text("\n".join(lines) + '\n{"step": 4, "lo')
    assert [e["step"] for e in read_log(tmp_path)] == [1, 2, 3]
    log = TrainLogger(tmp_path, tensorboard=False, resume_step=2)
    log.write({"step": 3, "loss": 0.25})
    log.close()
    assert read_log(tmp_path) == [
        {"step": 1, "loss": 1.0},
        {"step": 2, "loss": 0.5},
        {"step": 3, "loss": 0.25},
    ]


def test_a_broken_line_in_the_middle_is_an_error(tmp_path):
    (tmp_path / LOG_FILE).write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match=f"{LOG_FILE}:2: not a JSON line"):
        read_log(tmp_path)


def test_tensorboard_is_optional(tmp_path, caplog):
    log = TrainLogger(tmp_path, tensorboard=True, resume_step=0)
    log.write({"step": 1, "loss": 2.0, "lr": 1e-5, "grad_norm": None})
    log.close()
    assert read_log(tmp_path)[0]["loss"] == 2.0
    assert (tmp_path / "tensorboard").is_dir() or "tensorboard is not installed" in caplog.text
