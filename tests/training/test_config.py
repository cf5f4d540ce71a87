"""TrainConfig validation and the DeepSpeed config built from the named files."""

from __future__ import annotations

import json

import pytest

from heal_batch.training.config import DEEPSPEED_DIR, TrainConfig, build_deepspeed_config


@pytest.mark.parametrize("name, stage", [("zero2", 2), ("zero3", 3)])
def test_named_files_are_filled_from_the_config(name, stage):
    cfg = TrainConfig(per_device_batch=2, grad_accum=4, max_grad_norm=0.5, deepspeed=name)
    ds = build_deepspeed_config(cfg, world_size=8, bf16=True)
    assert ds["zero_optimization"]["stage"] == stage
    assert ds["train_micro_batch_size_per_gpu"] == 2 and ds["gradient_accumulation_steps"] == 4
    assert ds["train_batch_size"] == 64 and ds["gradient_clipping"] == 0.5
    assert ds["bf16"] == {"enabled": True} and ds["fp16"] == {"enabled": False}
    assert '"auto"' not in json.dumps(ds)


def test_every_packaged_file_parses_and_uses_auto_for_the_config_owned_keys():
    files = sorted(DEEPSPEED_DIR.glob("*.json"))
    assert {f.stem for f in files} == {"zero2", "zero3"}
    for path in files:
        ds = json.loads(path.read_text())
        assert ds["train_micro_batch_size_per_gpu"] == "auto" and "optimizer" not in ds


def test_a_file_value_that_contradicts_the_config_is_an_error(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(
        json.dumps({"gradient_accumulation_steps": 2, "zero_optimization": {"stage": 2}})
    )
    build_deepspeed_config(TrainConfig(grad_accum=2, deepspeed=str(path)), 1, bf16=False)
    with pytest.raises(
        ValueError, match="gradient_accumulation_steps is 2 but TrainConfig gives 4"
    ):
        build_deepspeed_config(TrainConfig(grad_accum=4, deepspeed=str(path)), 1, bf16=False)


def test_a_deepspeed_optimizer_section_is_rejected(tmp_path):
    path = tmp_path / "opt.json"
    path.write_text(json.dumps({"optimizer": {"type": "AdamW"}}))
    with pytest.raises(ValueError, match="remove 'optimizer'"):
        build_deepspeed_config(TrainConfig(deepspeed=str(path)), 1, bf16=False)


def test_broken_json_names_file_and_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n "a": 1,\n}')
    with pytest.raises(ValueError, match=r"bad.json:3: not valid JSON"):
        build_deepspeed_config(TrainConfig(deepspeed=str(path)), 1, bf16=False)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"deepspeed": "zero4"}, "expected one of \\['zero2', 'zero3'\\]"),
        ({"grad_accum": 0}, "grad_accum must be >= 1"),
        ({"schedule": "cosin"}, "expected one of"),
        ({"warmup_ratio": 1.0}, "warmup_ratio must be in"),
        ({"max_steps": 0}, "max_steps must be >= 1"),
        ({"dtype": "fp16"}, "dtype='fp16'"),
    ],
)
def test_invalid_settings_say_what_is_expected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_config_is_frozen_and_defaults_match_the_brief():
    cfg = TrainConfig()
    assert (cfg.lr, cfg.warmup_ratio, cfg.schedule, cfg.dtype) == (1e-5, 0.03, "cosine", "auto")
    with pytest.raises(AttributeError):
        cfg.lr = 1.0


def test_warmup_is_the_floor_of_the_share_so_short_runs_start_learning():
    from heal_batch.training.engine import warmup_steps

    assert warmup_steps(0.03, 2) == 0  # ceil would give 1: step 1 of 2 at lr 0
    assert warmup_steps(0.03, 1000) == 30
    assert warmup_steps(0.1, 25) == 2
