"""The DeepSpeed engine for one SFT stage: model from an HF dir, torch AdamW, lr schedule.

Inputs -> outputs: init_model_dir + TrainConfig + DistEnv + total optimizer steps -> a DeepSpeed
engine. The optimizer is a torch AdamW passed to `deepspeed.initialize` (a DeepSpeed optimizer
would JIT-build fused_adam/cpu_adam on CPU); the schedule is transformers' warm-up + decay,
stepped by the engine once per optimizer step. Under ZeRO-3 the weights are loaded already
partitioned (`HfDeepSpeedConfig` makes `from_pretrained` use `deepspeed.zero.Init`).

    engine, keep_alive = build_engine("runs/x/stage1/hf", cfg, env, total_steps=120)
"""

from __future__ import annotations

from heal_batch.training.config import TrainConfig, build_deepspeed_config
from heal_batch.training.distributed import DistEnv


def build_engine(init_model_dir: str, cfg: TrainConfig, env: DistEnv, total: int):
    """DeepSpeed engine over the model, a torch AdamW and the warm-up + decay schedule.

    Returns (engine, keep_alive): hold keep_alive (ZeRO-3's HfDeepSpeedConfig) while training.
    """
    import deepspeed
    import torch
    import transformers
    from transformers.integrations.deepspeed import HfDeepSpeedConfig

    bf16 = use_bf16(cfg, env)
    ds_config = build_deepspeed_config(cfg, env.world_size, bf16=bf16)
    # While this object lives, from_pretrained loads ZeRO-3 weights already partitioned.
    keep_alive = (
        HfDeepSpeedConfig(ds_config) if ds_config["zero_optimization"].get("stage") == 3 else None
    )
    model = transformers.AutoModelForCausalLM.from_pretrained(
        init_model_dir,
        dtype=torch.bfloat16 if bf16 else torch.float32,
        attn_implementation=cfg.attn_implementation,
    )
    model.config.use_cache = False
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = transformers.get_scheduler(
        cfg.schedule,
        optimizer,
        num_warmup_steps=warmup_steps(cfg.warmup_ratio, total),
        num_training_steps=total,
    )
    engine, *_ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=ds_config
    )
    return engine, keep_alive


def warmup_steps(ratio: float, total: int) -> int:
    """Warm-up steps of a ``total``-step run: the floor of the share, so a short run (the demo's
    2 steps) does not spend a whole step at lr 0."""
    return int(ratio * total)


def use_bf16(cfg: TrainConfig, env: DistEnv) -> bool:
    """dtype "auto": bf16 on a GPU that supports it, fp32 otherwise (CPU)."""
    if cfg.dtype != "auto":
        return cfg.dtype == "bf16"
    import torch

    return env.device.startswith("cuda") and torch.cuda.is_bf16_supported()
