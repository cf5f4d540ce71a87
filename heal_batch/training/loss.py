"""The SFT loss: summed next-token NLL over the assistant tokens, computed in position chunks.

Input: ``logits`` [B, T, V] (the model's output, any float dtype) and ``labels`` [B, T] (-100 where
no loss is taken, i.e. prompt and padding). Output: a 0-d float32 tensor, the sum over labelled
positions t of -log p(labels[t + 1] | logits[t]), equal in value and gradient to
``F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), reduction="sum")``.

Why: the plain form copies the shifted logits, casts the copy to float32 and keeps a float32
log-softmax for backward, several [T, V] buffers beside the logits (at 16k tokens and a 152k
vocabulary, about 10 GB each in float32). Here the labels are shifted instead of the logits, and
the forward pass walks over chunks of positions: per chunk it takes the float32 log-softmax, adds
the chunk's NLL and writes the chunk's gradient (softmax minus one-hot) into one buffer in the
logits' dtype, which backward only scales. Extra memory: that gradient buffer (backward needs one
anyway) plus one chunk's float32 temporaries; no recomputation. Chunks without a labelled
position (prompts) are skipped. Backward may run once (the buffer is scaled in place).

    nll = next_token_nll(out.logits, batch["labels"])   # then nll.backward()
"""

from __future__ import annotations

import functools
from typing import Any

IGNORE = -100
CHUNK_ELEMENTS = 1 << 25  # float32 logits per chunk (128 MB): 682 positions of a 49k vocabulary


def next_token_nll(logits: Any, labels: Any, chunk_positions: int | None = None) -> Any:
    """Summed next-token NLL of the labelled positions (see the module docstring).

    chunk_positions: positions per chunk; None sizes chunks to CHUNK_ELEMENTS float32 values.
    """
    import torch

    vocab = logits.shape[-1]
    chunk = chunk_positions if chunk_positions is not None else max(1, CHUNK_ELEMENTS // vocab)
    if chunk < 1:
        raise ValueError(f"chunk_positions must be >= 1, got {chunk_positions}")
    flat = logits.reshape(-1, vocab)  # a view: the model's logits are contiguous
    pad = torch.full_like(labels[:, :1], IGNORE)
    targets = torch.cat([labels[:, 1:], pad], dim=1).reshape(-1)  # target of position t is t + 1
    return _chunked_nll().apply(flat, targets, chunk)


@functools.cache
def _chunked_nll():
    """The autograd Function, built on first use (importing this module does not import torch)."""
    import torch

    class ChunkedNLL(torch.autograd.Function):
        @staticmethod
        def forward(ctx, flat, targets, chunk):
            grad = torch.zeros_like(flat) if flat.requires_grad else None
            total = torch.zeros((), dtype=torch.float32, device=flat.device)
            for start in range(0, targets.numel(), chunk):
                target = targets[start : start + chunk]
                labelled = target != IGNORE
                if not bool(labelled.any()):
                    continue
                logp = torch.log_softmax(flat[start : start + chunk].float(), dim=-1)
                picked = target.clamp(min=0).unsqueeze(1)
                nll = -logp.gather(1, picked).squeeze(1)
                total += nll.masked_fill(~labelled, 0.0).sum()
                if grad is not None:
                    d = logp.exp_()  # softmax, in place
                    d.scatter_add_(1, picked, torch.full_like(picked, -1.0, dtype=d.dtype))
                    d.masked_fill_(~labelled.unsqueeze(1), 0.0)
                    grad[start : start + chunk] = d
            ctx.save_for_backward(grad)
            return total

        @staticmethod
        def backward(ctx, grad_output):
            (grad,) = ctx.saved_tensors
            return grad.mul_(grad_output.to(grad.dtype)), None, None

    return ChunkedNLL

