"""The GPU paths of generate and score on one CUDA device (skip without one).

The exact scorer on CUDA gives what a plain forward with a full log_softmax gives, and the vLLM
teacher's records carry the token counts the generate stage puts into its receipt (``tokens_out``).
Timings live in tests/bench/gpu_check.sh; these check results only.
"""

from __future__ import annotations

import importlib.util

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_exact_scorer_on_cuda_matches_a_plain_forward():
    from heal_batch.backends.models import load_model_and_tokenizer
    from heal_batch.backends.scorer import score

    model, tok = load_model_and_tokenizer("smollm2-135m-instruct", dtype="float32")
    model.to("cuda")
    prompt, completion = "Count:", " 1 plus one is 2. 2 plus one is 3. So the answer is 3."
    (scored,) = score(model, tok, [(prompt, completion)], chunk_positions=8, batch_size=1)
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p_ids + scored.token_ids], device="cuda")
    with torch.inference_mode():
        logp = torch.log_softmax(model(ids).logits.float(), -1)[0, len(p_ids) - 1 : -1]
    targets = torch.tensor(scored.token_ids, device="cuda")
    expected_lp = logp.gather(-1, targets[:, None])[:, 0].cpu()
    expected_ent = (-(logp.exp() * logp).sum(-1)).cpu()
    assert torch.allclose(torch.tensor(scored.logprobs), expected_lp, atol=1e-3)
    assert torch.allclose(torch.tensor(scored.entropies), expected_ent, atol=1e-3)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="pip install -e '.[gpu]'")
def test_vllm_teacher_records_count_their_tokens():
    from heal_batch.data.builtin import generate_problems
    from heal_batch.stages.generate import GenerateConfig, _Teacher, _tokens_out
    from heal_batch.stages.teacher import TeacherConfig

    engine = {"max_model_len": 2048, "gpu_memory_utilization": 0.3}
    teacher = _Teacher(TeacherConfig(backend="vllm", dtype="bfloat16", vllm_engine=engine))
    records = teacher.rollouts(generate_problems(3, seed=7), GenerateConfig(k=2, max_new_tokens=64))
    assert len(records) == 6
    assert all(r["n_tokens"] == len(r["token_ids"]) > 0 for r in records)
    assert _tokens_out(records) == sum(len(r["token_ids"]) for r in records)
    assert all(r["entropy_method"].startswith("topk-") for r in records)
