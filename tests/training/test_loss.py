"""The chunked SFT loss equals the plain shifted cross-entropy, in value and in gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from heal_batch.training.loss import next_token_nll


def plain(logits, labels):
    return F.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(),
        labels[:, 1:].flatten(),
        ignore_index=-100,
        reduction="sum",
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_value_and_gradient_match_the_plain_loss(dtype, chunk):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 29, 41, generator=gen).to(dtype).requires_grad_()
    labels = torch.randint(0, 41, (3, 29), generator=gen)
    labels[:, :9] = -100  # prompt
    labels[2, 20:] = -100  # padding
    expected = plain(logits, labels)
    (want,) = torch.autograd.grad(expected, logits)
    got = next_token_nll(logits, labels, chunk_positions=chunk)
    (grad,) = torch.autograd.grad(got, logits)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    torch.testing.assert_close(grad, want)


def test_the_last_position_of_a_row_never_predicts_the_next_row():
    logits = torch.zeros(2, 3, 5, requires_grad=True)
    labels = torch.tensor([[-100, 1, 2], [3, 4, -100]])
    # position 2 of row 0 would predict row 1's first token (3) if rows were joined: it must not
    nll = next_token_nll(logits, labels, chunk_positions=4)
    (grad,) = torch.autograd.grad(nll, logits)
    assert nll.item() == pytest.approx(3 * torch.log(torch.tensor(5.0)).item())  # 1, 2 and 4
    assert grad[0, 2].abs().sum() == 0 and grad[1, 2].abs().sum() == 0


def test_nothing_labelled_gives_zero_and_bad_chunk_is_an_error():
    logits = torch.randn(1, 4, 6, requires_grad=True)
    assert next_token_nll(logits, torch.full((1, 4), -100)).item() == 0.0
    with pytest.raises(ValueError, match="chunk_positions"):
        next_token_nll(logits, torch.zeros(1, 4, dtype=torch.long), chunk_positions=0)
