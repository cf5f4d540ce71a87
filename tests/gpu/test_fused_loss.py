"""The fused SFT loss: Liger's fused linear cross-entropy equals the chunked loss on a tiny model.

The choice of path (`use_fused`) is tested everywhere; the comparison needs CUDA and liger-kernel
(``pip install -e '.[gpu]'``) and is skipped elsewhere.
"""

from __future__ import annotations

import pytest

from heal_batch.training.loss import fused_next_token_nll, next_token_nll, use_fused


def test_auto_and_off_pick_the_chunked_loss_off_cuda():
    assert not use_fused("auto", "cpu", 2) and not use_fused("off", "cpu", 2)
    assert not use_fused("auto", "cuda", 3)  # ZeRO-3 partitions the head's weight
    with pytest.raises(RuntimeError, match="fused_loss='on' but .*set fused_loss: auto"):
        use_fused("on", "cpu", 2)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_liger_loss_and_gradients_match_the_chunked_loss(tiny_llama, dtype):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("liger_kernel")
    from transformers import AutoModelForCausalLM

    assert use_fused("auto", "cuda", 2)
    torch.manual_seed(0)
    ids = torch.randint(0, 100, (2, 48), device="cuda")
    labels = ids.clone()
    labels[:, :10] = -100  # the prompt
    labels[1, 40:] = -100  # padding
    losses, grads = [], []
    for fused in (False, True):
        model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=getattr(torch, dtype))
        model.to("cuda")
        if fused:
            hidden = model.get_decoder()(input_ids=ids, use_cache=False).last_hidden_state
            nll = fused_next_token_nll(hidden, model.get_output_embeddings().weight, labels)
        else:
            nll = next_token_nll(model(input_ids=ids, use_cache=False).logits, labels)
        nll.backward()
        losses.append(nll.item())
        grads.append({n: p.grad.float() for n, p in model.named_parameters() if p.grad is not None})
    tol = 1e-4 if dtype == "float32" else 2e-2
    assert losses[1] == pytest.approx(losses[0], rel=tol)
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        scale = grad.abs().max().clamp(min=1e-6)
        assert (grads[1][name] - grad).abs().max() / scale < tol * 10, name
