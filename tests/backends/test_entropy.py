import math

import pytest
import torch

from heal_batch.backends.entropy import (
    entropy_and_logprob,
    entropy_from_logits,
    logprob_of,
    topk_entropy,
)
from heal_batch.records import decode_floats, encode_floats


def _direct_entropy(logits: torch.Tensor) -> torch.Tensor:
    p = torch.softmax(logits.double(), -1)
    return -(p * torch.log(p)).sum(-1)


def test_exact_entropy_matches_direct_softmax():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 1000) * 4
    got = entropy_from_logits(logits)
    assert got.dtype == torch.float32 and got.shape == (3, 5)
    torch.testing.assert_close(got.double(), _direct_entropy(logits), atol=1e-4, rtol=0)


def test_exact_entropy_of_bf16_logits_is_computed_in_float32():
    logits = torch.randn(4, 300).to(torch.bfloat16)
    got = entropy_from_logits(logits)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), _direct_entropy(logits.float()), atol=1e-4, rtol=0)


def test_masked_logits_give_finite_entropy():
    logits = torch.tensor([[0.0, 0.0, float("-inf"), float("-inf")]])
    assert entropy_from_logits(logits).item() == pytest.approx(math.log(2), abs=1e-6)


def test_entropy_and_logprob_agree_with_separate_functions():
    logits = torch.randn(6, 50)
    ids = torch.randint(0, 50, (6,))
    ent, lp = entropy_and_logprob(logits, ids)
    torch.testing.assert_close(ent, entropy_from_logits(logits))
    torch.testing.assert_close(lp, logprob_of(logits, ids))
    torch.testing.assert_close(lp, torch.log_softmax(logits, -1)[torch.arange(6), ids])


def test_topk_entropy_is_at_most_exact_and_exact_when_k_is_the_vocab():
    torch.manual_seed(1)
    for row in torch.randn(20, 200) * 3:
        logp = torch.log_softmax(row.double(), -1)
        exact = float(_direct_entropy(row))
        top = torch.topk(logp, 20)
        est = topk_entropy(dict(zip(top.indices.tolist(), top.values.tolist(), strict=True)))
        assert 0 <= est <= exact + 1e-9
        assert topk_entropy(logp.tolist()) == pytest.approx(exact, abs=1e-9)


def test_topk_entropy_renormalises_and_handles_edge_cases():
    assert topk_entropy({1: math.log(0.25), 2: math.log(0.25)}) == pytest.approx(math.log(2))
    assert topk_entropy({}) == 0.0
    assert topk_entropy([0.0, float("-inf")]) == 0.0


def test_float_codec_roundtrip_error_and_size():
    torch.manual_seed(2)
    values = (torch.rand(500) * 8).tolist() + (-torch.rand(500) * 30).tolist()
    text = encode_floats(values)
    back = decode_floats(text)
    assert len(back) == len(values)
    assert max(abs(a - b) / max(abs(a), 1e-3) for a, b in zip(values, back, strict=True)) <= 2**-11
    assert len(text) <= 4 + math.ceil(len(values) * 2 / 3) * 4
    assert decode_floats(encode_floats([])) == []
    assert decode_floats(encode_floats([float("-inf"), 1e9])) == [float("-inf"), float("inf")]


@pytest.mark.parametrize("bad", ["", "f32:AAAA", "AAAA", "f16:AAA", "f16:!!!!"])
def test_decode_floats_rejects_malformed_text(bad):
    with pytest.raises(ValueError):
        decode_floats(bad)
