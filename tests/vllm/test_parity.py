"""vLLM against transformers on the same 24 demo prompts, greedy, 128 new tokens, fp32.

Measured (2-core VM; tests/vllm/README.md): fp32 gives 24/24 identical texts and token logprobs
equal to within 5e-4 nats; top-20 entropy against exact entropy Pearson r 0.991, mean bias -0.080
nats (-13 %: the renormalised top-K misses the tail). In bf16 the kernels differ: 17/24 identical,
mean |logprob diff| 0.012 (p99 0.12), entropy r 0.990, bias -0.078. The bounds leave two texts
and some rounding to other CPUs' kernels; a wrong logprob (temperature-scaled, off by one token)
or entropy (unrenormalised, not top-K) breaks them by far.
"""

from __future__ import annotations

import numpy as np
import pytest

from heal_batch.backends.base import GenerationParams, SampleRequest
from tests.vllm.conftest import TEACHER
from tests.vllm.test_engine import prompts

pytestmark = pytest.mark.vllm
N_PROMPTS, MAX_NEW_TOKENS = 24, 128


@pytest.fixture(scope="module")
def pair(engine):
    """(vLLM samples, transformers samples) for the same greedy requests."""
    from heal_batch.backends.hf import HFGenerator

    requests = [SampleRequest(p, seed=0) for p in prompts(engine, N_PROMPTS)]
    params = GenerationParams(temperature=0, max_new_tokens=MAX_NEW_TOKENS)
    hf = HFGenerator.from_spec(engine.model_path, dtype=TEACHER.dtype, batch_size=N_PROMPTS)
    ours = [group[0] for group in engine.generate(requests, params)]
    exact = [group[0] for group in hf.generate(requests, params)]
    return ours, exact


def shared_prefix(a: list[int], b: list[int]) -> int:
    pairs = zip(a, b, strict=False)
    return next((i for i, (x, y) in enumerate(pairs) if x != y), min(len(a), len(b)))


def test_most_greedy_texts_are_identical(pair):
    ours, exact = pair
    same = sum(v.text == h.text for v, h in zip(ours, exact, strict=True))
    print(f"identical greedy texts: {same}/{len(ours)}")
    assert same >= len(ours) - 2  # measured 24/24


def test_token_logprobs_and_entropies_agree(pair):
    ours, exact = pair
    d_logprob, topk, full = [], [], []
    for v, h in zip(ours, exact, strict=True):
        n = shared_prefix(v.token_ids, h.token_ids)
        d_logprob += [a - b for a, b in zip(v.logprobs[:n], h.logprobs[:n], strict=True)]
        topk += v.entropies[:n]
        full += h.entropies[:n]
    d, topk, full = np.abs(d_logprob), np.array(topk), np.array(full)
    r, bias = np.corrcoef(topk, full)[0, 1], float(np.mean(topk - full))
    print(
        f"{len(d)} shared tokens: |logprob diff| mean {d.mean():.4f}"
        f" p99 {np.quantile(d, 0.99):.3f} max {d.max():.3f};"
        f" entropy r {r:.3f}, bias {bias:+.3f} nats"
        f" ({bias / full.mean():+.1%} of {full.mean():.3f})"
    )
    assert len(d) >= 800  # measured 1136 (every token); two texts may part early
    assert d.mean() < 1e-3 and d.max() < 0.02  # measured mean < 5e-5, max < 5e-4
    assert r > 0.95  # measured 0.991
    assert -0.2 < bias < 0  # measured -0.080: top-K reads low, never high on average


def test_gear_breakpoints_from_top_k_and_exact_entropies(pair):
    """GEAR (the demo's settings) on the same greedy texts: the breakpoint the top-20 estimate
    picks against the one the exact entropies pick, over the texts both backends wrote alike."""
    import yaml

    from heal_batch.method.gear import GearConfig, find_breakpoint
    from heal_batch.method.trajectory import steps_of
    from tests.vllm.test_pipeline_vllm import REPO

    demo = yaml.safe_load((REPO / "jobs" / "demo.yaml").read_text())
    cfg = GearConfig(**demo["repair"]["gear"])
    same, cuts = 0, 0
    for v, h in zip(*pair, strict=True):
        if v.token_ids != h.token_ids:
            continue
        steps = steps_of(v.text, v.offsets, cfg.min_step_tokens, cfg.step_delimiter)
        cuts += 1
        topk, exact = (find_breakpoint(e, steps, cfg) for e in (v.entropies, h.entropies))
        same += topk.token_index == exact.token_index
    print(f"GEAR breakpoint, top-20 vs exact entropy: same on {same}/{cuts} texts")
    assert cuts >= 20
    assert same >= 0.75 * cuts
