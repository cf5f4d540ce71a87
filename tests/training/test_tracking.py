"""Run tracking: $HEAL_TRACKERS sends training and evaluation metrics to TensorBoard and trackio.

Both write local files only; trackio's go to $TRACKIO_DIR (read when trackio is imported, so
this module points it at a temporary folder before the first import).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from heal_batch.tracking import (
    TRACKERS_ENV,
    eval_metrics,
    eval_run_name,
    log_eval_metrics,
    tracker_names,
)
from heal_batch.training import TrainConfig, train_sft

RECORDS = [
    {
        "benchmark": "math500",
        "greedy_acc": 0.41,
        "avg_at_n": 0.39,
        "pass_at_n": 0.55,
        "answered_greedy": 0.97,
        "num_problems": 500,
        "pass_at_k": {"1": 0.39, "4": 0.55},
        "limit": None,
        "seconds": 812.3,
        "model": "/ckpt",
    },
    {
        "benchmark": "aime24",
        "greedy_acc": None,
        "avg_at_n": 0.1,
        "pass_at_n": 0.2,
        "pass_at_k": None,
        "num_problems": 30,
    },
]


@pytest.fixture(scope="module")
def trackio_dir(tmp_path_factory) -> Path:
    """The folder trackio writes to: a temporary one unless trackio was imported earlier."""
    folder = tmp_path_factory.mktemp("trackio")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRACKIO_DIR", str(folder))
        mp.setenv("HF_HUB_OFFLINE", "1")
        utils = pytest.importorskip("trackio.utils")
        yield Path(utils.TRACKIO_DIR)


def test_tracker_names_come_from_the_environment():
    assert tracker_names({}) == ()
    assert tracker_names({TRACKERS_ENV: " TensorBoard, trackio,trackio "}) == (
        "tensorboard",
        "trackio",
    )
    with pytest.raises(ValueError, match="unknown tracker.*'wandb'.*tensorboard, trackio"):
        tracker_names({TRACKERS_ENV: "tensorboard,wandb"})


def test_eval_metrics_of_hand_made_records():
    assert eval_metrics(RECORDS) == {
        "eval/math500/greedy_acc": 0.41,
        "eval/math500/avg_at_n": 0.39,
        "eval/math500/pass_at_n": 0.55,
        "eval/math500/answered_greedy": 0.97,
        "eval/math500/num_problems": 500.0,
        "eval/math500/pass_at_1": 0.39,
        "eval/math500/pass_at_4": 0.55,
        "eval/aime24/avg_at_n": 0.1,
        "eval/aime24/pass_at_n": 0.2,
        "eval/aime24/num_problems": 30.0,
    }
    assert eval_run_name("runs/x/checkpoints/0123456789abcdef/heal-2/hf") == (
        "eval-heal-2-0123456789ab"
    )
    assert eval_run_name("smollm2-135m-instruct") == "eval-smollm2-135m-instruct"


def test_nothing_is_written_when_no_tracker_is_asked_for(tmp_path, monkeypatch):
    monkeypatch.delenv(TRACKERS_ENV, raising=False)
    assert log_eval_metrics(RECORDS, tmp_path, "m")["eval/math500/pass_at_4"] == 0.55
    assert list(tmp_path.iterdir()) == []


def test_eval_metrics_reach_tensorboard_and_trackio(trackio_dir, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    monkeypatch.setenv(TRACKERS_ENV, "tensorboard,trackio")
    monkeypatch.setenv("HEAL_TRACKING_PROJECT", "heal-eval-test")
    model = str(tmp_path / "checkpoints" / "abc" / "heal-1" / "hf")
    logged = log_eval_metrics(RECORDS, tmp_path / "lm_eval", model)
    assert _scalars(tmp_path / "lm_eval" / "tensorboard") == {
        k: [(0, v)] for k, v in logged.items()
    }
    rows = _trackio_rows(trackio_dir, "heal-eval-test")
    assert rows == [("eval-heal-1-abc", 0, logged)]


def test_a_tiny_training_run_writes_tensorboard_and_trackio(
    trackio_dir, tiny_llama, records, tmp_path, monkeypatch
):
    pytest.importorskip("tensorboard")
    monkeypatch.setenv(TRACKERS_ENV, "tensorboard,trackio")
    monkeypatch.setenv("HEAL_TRACKING_PROJECT", "heal-train-test")
    out = tmp_path / "checkpoints" / "key1" / "heal-1"
    cfg = TrainConfig(max_steps=2, max_seq_len=128, per_device_batch=2, save_every_steps=0)
    train_sft(records[:8], str(tiny_llama), out, cfg)

    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    scalars = _scalars(out / "tensorboard")
    for key in ("loss", "lr", "grad_norm", "tokens_per_s", "tokens"):
        assert [step for step, _ in scalars[f"train/{key}"]] == [1, 2]
    assert scalars["train/loss"][0][1] == pytest.approx(log[0]["loss"])
    rows = _trackio_rows(trackio_dir, "heal-train-test")
    assert [(name, step) for name, step, _ in rows] == [("heal-1-key1", 1), ("heal-1-key1", 2)]
    assert rows[1][2]["train/loss"] == pytest.approx(log[1]["loss"])


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {
        tag: [(e.step, pytest.approx(e.value)) for e in acc.Scalars(tag)]
        for tag in acc.Tags()["scalars"]
    }


def _trackio_rows(folder: Path, project: str) -> list[tuple[str, int, dict]]:
    with sqlite3.connect(folder / f"{project}.db") as db:
        rows = db.execute("SELECT run_name, step, metrics FROM metrics ORDER BY id").fetchall()
    return [(name, step, json.loads(metrics)) for name, step, metrics in rows]
