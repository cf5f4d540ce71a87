"""SFT settings (`TrainConfig`) and the DeepSpeed config built from them.

Inputs -> outputs: a frozen `TrainConfig` plus the world size -> the DeepSpeed config dict that
`deepspeed.initialize` receives. Named DeepSpeed files live next to this module
(`heal_batch/training/deepspeed/zero2.json`, `zero3.json`); a config refers to them by name or
gives a path to its own JSON file. Keys set to "auto" in the file are filled from `TrainConfig`;
a key the file sets to a value that contradicts `TrainConfig` is an error, so a file never
silently overrides the experiment config.

    cfg = TrainConfig(lr=1e-5, epochs=2, per_device_batch=1, grad_accum=8, deepspeed="zero3")
    ds = build_deepspeed_config(cfg, world_size=8, bf16=True)
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from heal_batch.records import OMIT_AT_DEFAULT

NAMED_DEEPSPEED = {"zero2", "zero3"}
DEEPSPEED_DIR = Path(__file__).with_name("deepspeed")
SCHEDULES = ("cosine", "linear", "constant_with_warmup")
FUSED_MODES = ("auto", "on", "off")
# Fields that change what the model learns: a resumed run must match them exactly.
RESUME_KEYS = (
    "lr",
    "epochs",
    "per_device_batch",
    "grad_accum",
    "max_seq_len",
    "warmup_ratio",
    "schedule",
    "seed",
    "max_steps",
    "weight_decay",
    "max_grad_norm",
)


@dataclass(frozen=True)
class TrainConfig:
    """Supervised fine-tuning of one PACE stage.

    Attributes:
        lr: peak learning rate (AdamW).
        epochs: passes over the packed training set (ignored when max_steps is set).
        per_device_batch: packed rows per micro-batch on each rank.
        grad_accum: micro-batches per optimizer step on each rank.
        max_seq_len: tokens per packed row; longer samples are truncated.
        warmup_ratio: share of optimizer steps spent warming the lr up linearly from 0.
        schedule: lr decay after warm-up: "cosine" (to 0), "linear" or "constant_with_warmup".
        seed: seeds weights-independent randomness: sample order, packing ties, torch RNG.
        deepspeed: "zero2", "zero3" (files in heal_batch/training/deepspeed/) or a JSON path.
        dtype: "auto" (bf16 on GPU, fp32 on CPU), "bf16" or "fp32".
        save_every_steps: resumable DeepSpeed checkpoint every N optimizer steps (0: never).
        keep_checkpoints: resumable checkpoints kept on disk (older ones are deleted).
        keep_ds_checkpoint: keep out_dir/ds_ckpt after the final HF directory is written.
        log_every_steps: write a train_log.jsonl line every N optimizer steps.
        log_tensorboard: also log to out_dir/tensorboard (skipped with a warning if
            tensorboard is not installed).
        max_steps: total optimizer steps; overrides epochs when set.
        weight_decay: AdamW weight decay.
        max_grad_norm: gradient clipping norm (0: no clipping).
        attn_implementation: "sdpa" (CPU and GPU), "eager" or "flash_attention_2" (GPU).
        gradient_checkpointing: recompute activations in backward (saves memory on long rows).
        fused_loss: "auto" (Liger-Kernel's fused linear cross-entropy when liger-kernel is
            installed, the run is on CUDA and not ZeRO-3; else the chunked loss), "on" (Liger,
            an error where it cannot run) or "off" (always the chunked loss of training/loss.py).
    """

    lr: float = 1e-5
    epochs: int = 1
    per_device_batch: int = 1
    grad_accum: int = 1
    max_seq_len: int = 4096
    warmup_ratio: float = 0.03
    schedule: Literal["cosine", "linear", "constant_with_warmup"] = "cosine"
    seed: int = 0
    deepspeed: str = "zero2"
    dtype: Literal["auto", "bf16", "fp32"] = "auto"
    save_every_steps: int = 50
    keep_checkpoints: int = 1
    keep_ds_checkpoint: bool = False
    log_every_steps: int = 1
    log_tensorboard: bool = False
    max_steps: int | None = None
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    attn_implementation: str = "sdpa"
    gradient_checkpointing: bool = False
    fused_loss: Literal["auto", "on", "off"] = field(default="auto", metadata=OMIT_AT_DEFAULT)

    def __post_init__(self) -> None:
        positive = ("epochs", "per_device_batch", "grad_accum", "max_seq_len", "log_every_steps")
        for key in positive:
            if getattr(self, key) < 1:
                raise ValueError(f"TrainConfig.{key} must be >= 1, got {getattr(self, key)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"TrainConfig.max_steps must be >= 1 or None, got {self.max_steps}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"TrainConfig.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"TrainConfig.schedule={self.schedule!r}; expected one of {SCHEDULES}")
        if self.dtype not in ("auto", "bf16", "fp32"):
            raise ValueError(f"TrainConfig.dtype={self.dtype!r}; expected 'auto', 'bf16' or 'fp32'")
        if self.save_every_steps < 0 or self.keep_checkpoints < 1:
            raise ValueError("TrainConfig.save_every_steps must be >= 0 and keep_checkpoints >= 1")
        if self.fused_loss not in FUSED_MODES:
            raise ValueError(
                f"TrainConfig.fused_loss={self.fused_loss!r}; expected one of {FUSED_MODES}"
            )
        deepspeed_path(self.deepspeed)  # fail at config time, not after model loading

    def resume_fingerprint(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run that wrote the checkpoint."""
        return {key: getattr(self, key) for key in RESUME_KEYS}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def deepspeed_path(name_or_path: str) -> Path:
    """Resolve "zero2"/"zero3" to the packaged file, anything else to an existing JSON path."""
    if name_or_path in NAMED_DEEPSPEED:
        return DEEPSPEED_DIR / f"{name_or_path}.json"
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(
            f"TrainConfig.deepspeed={name_or_path!r}: expected one of {sorted(NAMED_DEEPSPEED)} "
            "or the path of a DeepSpeed JSON file"
        )
    return path


def build_deepspeed_config(cfg: TrainConfig, world_size: int, bf16: bool) -> dict[str, Any]:
    """Load cfg.deepspeed and fill its "auto" values from cfg.

    Batch sizes, accumulation, clipping and precision always come from cfg: "auto" (or absent)
    in the file means "take cfg's value"; any other value must equal it.
    """
    path = deepspeed_path(cfg.deepspeed)
    try:
        ds = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from err
    wanted = {
        "train_micro_batch_size_per_gpu": cfg.per_device_batch,
        "gradient_accumulation_steps": cfg.grad_accum,
        "train_batch_size": cfg.per_device_batch * cfg.grad_accum * world_size,
        "gradient_clipping": cfg.max_grad_norm,
    }
    for key, value in wanted.items():
        _fill(ds, key, value, path)
    ds.setdefault("bf16", {})
    _fill(ds["bf16"], "enabled", bf16, path, prefix="bf16.")
    if ds.get("fp16", {}).get("enabled") not in (None, False, "auto"):
        raise ValueError(
            f"{path}: fp16.enabled must be false or 'auto'; heal_batch trains bf16/fp32"
        )
    ds["fp16"] = {"enabled": False}
    if ds.get("optimizer") or ds.get("scheduler"):
        raise ValueError(
            f"{path}: remove 'optimizer'/'scheduler'; train_sft passes a torch AdamW and its own "
            "schedule (a DeepSpeed optimizer would JIT-build fused_adam on CPU)"
        )
    zero = ds.setdefault("zero_optimization", {})
    if zero.get("stage") == 3:
        # Needed to write the final HF checkpoint from partitioned weights.
        zero.setdefault("stage3_gather_16bit_weights_on_model_save", True)
    return ds


def _fill(section: dict, key: str, value: Any, path: Path, prefix: str = "") -> None:
    current = section.get(key, "auto")
    if current == "auto":
        section[key] = value
    elif current != value:
        raise ValueError(
            f"{path}: {prefix}{key} is {current!r} but TrainConfig gives {value!r}; "
            'set it to "auto" in the file and choose the value in TrainConfig'
        )
