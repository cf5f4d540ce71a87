"""train_sft end to end on the tiny Llama: two PACE stages, kill and resume, and two ranks."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from heal_batch.training import TrainConfig, train_sft
from heal_batch.training.checkpoint import COMPLETE, hash_files, latest_state
from heal_batch.training.distributed import free_port
from heal_batch.training.logs import read_log
from heal_batch.training.packing import pack_samples
from heal_batch.training.tokenize import tokenize_records
from tests.training.conftest import chat_records

REPO = Path(__file__).resolve().parents[2]
FAST = {"lr": 3e-3, "per_device_batch": 2, "grad_accum": 2, "max_seq_len": 256, "warmup_ratio": 0.1}


def _losses(out_dir: Path) -> dict[int, float]:
    return {entry["step"]: entry["loss"] for entry in read_log(out_dir)}  # safe mid-write


def test_two_stages_each_start_from_the_previous_checkpoint(tiny_llama, records, tmp_path, caplog):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg1 = TrainConfig(**FAST, epochs=2, deepspeed="zero2", save_every_steps=0)
    first = train_sft(records, str(tiny_llama), tmp_path / "stage1", cfg1)
    log1 = read_log(tmp_path / "stage1")
    rows = pack_samples(
        tokenize_records(records, AutoTokenizer.from_pretrained(tiny_llama), 256)[0], 256, 0
    )
    assert first.steps == len(log1) == 2 * math.ceil(len(rows) / 4)  # 2 epochs of 4-row batches
    assert log1[-1]["loss"] < log1[0]["loss"] - 1.0 and first.final_loss == log1[-1]["loss"]
    assert {"step", "loss", "lr", "tokens_per_s", "grad_norm"} <= log1[0].keys()
    lrs = [entry["lr"] for entry in log1]  # 1 warm-up step from 0, then cosine decay
    assert (
        lrs[0] == 0.0 and lrs[1] == pytest.approx(3e-3) and lrs[2:] == sorted(lrs[2:], reverse=True)
    )
    hf1 = first.hf_dir
    assert {"model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja"} <= set(
        first.files
    )
    assert first.files == hash_files(hf1) and not (tmp_path / "stage1" / "ds_ckpt").exists()
    assert (
        AutoTokenizer.from_pretrained(hf1).chat_template
        == AutoTokenizer.from_pretrained(tiny_llama).chat_template
    )

    # Stage 2 on cumulative data, from stage 1's HF dir, with ZeRO-3 (partitioned load and save).
    cfg2 = TrainConfig(**FAST, epochs=1, deepspeed="zero3", log_tensorboard=True)
    second = train_sft(records + chat_records(16, offset=100), str(hf1), tmp_path / "stage2", cfg2)
    log2 = read_log(tmp_path / "stage2")
    assert (
        log2[0]["loss"] < log1[0]["loss"] - 1.0
    )  # it starts where stage 1 ended, not from scratch
    assert second.final_loss < log1[0]["loss"]
    assert (
        tmp_path / "stage2" / "tensorboard"
    ).is_dir() or "tensorboard is not installed" in caplog.text
    m1, m2 = (AutoModelForCausalLM.from_pretrained(d) for d in (hf1, second.hf_dir))
    assert not m1.model.embed_tokens.weight.equal(m2.model.embed_tokens.weight)

    # Running a finished stage again only verifies it; a different config is refused.
    again = train_sft(records, str(tiny_llama), tmp_path / "stage1", cfg1)
    assert again == first and read_log(tmp_path / "stage1") == log1
    with pytest.raises(ValueError, match="lr: saved 0.003 != now 0.001"):
        train_sft(
            records,
            str(tiny_llama),
            tmp_path / "stage1",
            TrainConfig(**{**FAST, "lr": 1e-3}, epochs=2),
        )


def _spec(tmp_path: Path, name: str, init: Path, records: int, cfg: dict) -> Path:
    spec = tmp_path / f"{name}.json"
    spec.write_text(
        json.dumps({"init": str(init), "out": str(tmp_path / name), "records": records, "cfg": cfg})
    )
    return spec


def _run_group(cmd: list[str], env: dict[str, str], timeout: float) -> None:
    """Run cmd in its own session; on timeout kill its whole group (torchrun's workers too)."""
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, start_new_session=True, stderr=subprocess.PIPE, text=True
    )
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    assert proc.returncode == 0, err[-3000:]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return {**env, **extra}


@pytest.mark.slow
def test_a_killed_stage_resumes_from_its_last_checkpoint(tiny_llama, tmp_path):
    cfg = dict(FAST, max_steps=40, save_every_steps=4, keep_checkpoints=2)
    spec = _spec(tmp_path, "run", tiny_llama, 48, cfg)
    out = tmp_path / "run"
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.training.train_child", str(spec)], cwd=REPO, env=_env()
    )
    deadline = time.monotonic() + 240
    # Kill once the run is 2 steps past its first checkpoint, so it loses work it must redo.
    while max(_losses(out), default=0) < 6 or not (out / "ds_ckpt" / COMPLETE).is_file():
        assert child.poll() is None, "child ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.05)
    child.kill()  # SIGKILL: no cleanup, possibly mid-step or mid-save
    child.wait()
    saved = latest_state(out / "ds_ckpt").step
    killed_log = _losses(out)
    assert 4 <= saved < 40 and not (out / "hf").exists()

    with pytest.raises(ValueError, match="seed: saved 0 != now 1"):
        train_sft(chat_records(48), str(tiny_llama), out, TrainConfig(**{**cfg, "seed": 1}))
    result = train_sft(chat_records(48), str(tiny_llama), out, TrainConfig(**cfg))
    assert result.resumed_from_step == saved and result.steps == 40
    resumed = _losses(out)
    assert sorted(resumed) == list(range(1, 41))  # each step logged once
    overlap = [step for step in killed_log if step > saved]  # redone after the resume
    assert overlap or saved > 4
    for step in list(range(1, saved + 1)) + overlap:  # the same numbers as the killed run
        assert resumed[step] == pytest.approx(killed_log[step], abs=1e-5)
    assert resumed[40] < resumed[1]


@pytest.mark.slow
@pytest.mark.parametrize("zero", ["zero2", "zero3"])
def test_two_ranks_on_cpu_match_one_rank_with_accumulation(tiny_llama, tmp_path, zero):
    base = dict(FAST, per_device_batch=1, max_steps=6, save_every_steps=3, deepspeed=zero)
    spec = _spec(tmp_path, "ranks2", tiny_llama, 24, dict(base, grad_accum=1))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    cmd += ["--master_port", str(free_port()), "-m", "tests.training.train_child", str(spec)]
    _run_group(cmd, _env(OMP_NUM_THREADS="1"), timeout=300)
    two = json.loads((tmp_path / "ranks2.result.json").read_text())

    one = train_sft(
        chat_records(24),
        str(tiny_llama),
        tmp_path / "rank1",
        TrainConfig(**dict(base, grad_accum=2)),
    )
    assert two["steps"] == one.steps == 6
    l2, l1 = _losses(tmp_path / "ranks2"), _losses(tmp_path / "rank1")
    assert l2.keys() == l1.keys()
    for step in l1:  # same global batches split over ranks instead of micro-batches
        assert l2[step] == pytest.approx(l1[step], abs=1e-4)
