"""SFT for PACE stages: tokenize chats (assistant-only loss), pack, train with DeepSpeed, save HF
dirs.

Public API (torch, transformers and deepspeed load only when training starts):

    from heal_batch.training import TrainConfig, train_sft
    result = train_sft(records, init_model_dir, out_dir, TrainConfig(epochs=1, deepspeed="zero2"))

Modules: config (TrainConfig, DeepSpeed files), tokenize, packing, batches (data order per rank),
distributed (process group set-up), checkpoint (resume + HF dir + hashes), logs, loop (train_sft).
"""

from heal_batch.training.config import TrainConfig

__all__ = ["TrainConfig", "TrainResult", "train_sft"]


def __getattr__(name: str):
    # loop.py is light too, but keep the package import free of anything that could grow heavy.
    if name in ("train_sft", "TrainResult"):
        from heal_batch.training import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'heal_batch.training' has no attribute {name!r}")
