"""Per-token entropy and log-probability helpers, and a compact text encoding for float arrays.

Inputs -> outputs:
  logits [..., V] (any float dtype)      -> exact entropy [...] in nats (float32 math)
  {token_id: logprob} for the top K      -> renormalised top-K entropy estimate (never above the
                                            exact entropy when the entries are the true top K)

Example:
    >>> topk_entropy({1: math.log(0.5), 2: math.log(0.5)})
    0.6931...

The float encoding of records (f16 base64) lives in heal_batch.records.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Exact entropy H = -sum p log p over the last axis, in nats, computed in float32.

    Tokens with probability 0 (logit -inf) contribute 0, not NaN.
    """
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    plogp = logp.exp() * logp
    return -torch.where(torch.isfinite(logp), plogp, torch.zeros_like(plogp)).sum(-1)


def logprob_of(logits: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[token] over the last axis; logits [..., V], token_ids [...] -> [...]."""
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, token_ids.long().unsqueeze(-1)).squeeze(-1)


def entropy_and_logprob(logits: torch.Tensor, token_ids: torch.Tensor):
    """Both at once with a single log_softmax: (entropy [...], chosen logprob [...])."""
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    plogp = logp.exp() * logp
    ent = -torch.where(torch.isfinite(logp), plogp, torch.zeros_like(plogp)).sum(-1)
    return ent, logp.gather(-1, token_ids.long().unsqueeze(-1)).squeeze(-1)


def topk_entropy(logprobs: Mapping[int, float] | Iterable[float]) -> float:
    """Entropy of the distribution restricted to the given entries, renormalised to sum to 1.

    This is what an engine that returns only the top-K logprobs lets us compute. It ignores the
    tail, so it reads low (about 20 % low for K=20 on SmolLM2; stack-2026-11-24.md section 3c) but
    ranks tokens well. For the true top K it is never above the exact entropy: every tail token is
    at most as likely as the least likely kept one. -inf entries are ignored; empty input gives 0.0.
    """
    values = list(logprobs.values()) if isinstance(logprobs, Mapping) else list(logprobs)
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0
    top = max(finite)
    log_z = top + math.log(sum(math.exp(v - top) for v in finite))
    return -sum(math.exp(v - log_z) * (v - log_z) for v in finite)
