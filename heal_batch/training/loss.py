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

On a GPU with liger-kernel installed, `fused_next_token_nll` gives the same sum from the last
hidden states and the output head's weight: Liger's fused linear cross-entropy computes the head
and the loss chunk by chunk, so the [T, V] logits are never materialised. `use_fused` picks the
path from TrainConfig.fused_loss; this chunked loss stays the CPU (and ZeRO-3) path.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

IGNORE = -100
CHUNK_ELEMENTS = 1 << 25  # float32 logits per chunk (128 MB): 682 positions of a 49k vocabulary


def next_token_nll(logits: Any, labels: Any, chunk_positions: int | None = None) -> Any:
    """Summed next-token NLL of the labelled positions (see the module docstring).

    chunk_positions: positions per chunk; None sizes chunks to CHUNK_ELEMENTS float32 values.
    """
    vocab = logits.shape[-1]
    chunk = chunk_positions if chunk_positions is not None else max(1, CHUNK_ELEMENTS // vocab)
    if chunk < 1:
        raise ValueError(f"chunk_positions must be >= 1, got {chunk_positions}")
    flat = logits.reshape(-1, vocab)  # a view: the model's logits are contiguous
    return _chunked_nll().apply(flat, _next_targets(labels), chunk)


def fused_next_token_nll(hidden: Any, weight: Any, labels: Any, softcap: float | None = None):
    """`next_token_nll(hidden @ weight.T, labels)` without the logits, by Liger-Kernel (CUDA).

    hidden: [B, T, H] last hidden states; weight: [V, H] the output head's weight (no bias);
    softcap: the model's final logit soft-capping (None for most models).
    """
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

    loss = LigerFusedLinearCrossEntropyLoss(ignore_index=IGNORE, reduction="sum", softcap=softcap)
    flat = hidden.reshape(-1, hidden.shape[-1])
    return loss(weight, flat, _next_targets(labels)).float()


def use_fused(mode: str, device_type: str, zero_stage: int) -> bool:
    """Whether TrainConfig.fused_loss `mode` picks Liger's fused loss on this run.

    "auto": when liger-kernel is installed, the device is CUDA and the weights are not
    partitioned (ZeRO-3 shards the head's weight outside its forward). "on" raises where it
    cannot run; "off" never.
    """
    why_not = _fused_unavailable(device_type, zero_stage)
    if mode == "on" and why_not:
        raise RuntimeError(f"TrainConfig.fused_loss='on' but {why_not}; set fused_loss: auto")
    return mode != "off" and not why_not


def _fused_unavailable(device_type: str, zero_stage: int) -> str:
    if importlib.util.find_spec("liger_kernel") is None:
        return "liger-kernel is not installed (pip install 'heal-batch[gpu]')"
    if device_type != "cuda":
        return f"the run is on {device_type}, and Liger's kernels need CUDA"
    if zero_stage >= 3:
        return "ZeRO-3 partitions the output head's weight (use zero2)"
    return ""


def _next_targets(labels: Any) -> Any:
    """Labels shifted left by one, flattened: the target of position t is labels[t + 1]."""
    import torch

    pad = torch.full_like(labels[:, :1], IGNORE)
    return torch.cat([labels[:, 1:], pad], dim=1).reshape(-1)


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
