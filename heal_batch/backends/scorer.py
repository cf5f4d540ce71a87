"""Exact teacher-forced scoring: per-token log-probability and entropy of given text under a model.

Inputs -> outputs: (prompt, completion) pairs -> one Scored per pair, per completion token:
  token_ids, logprobs (of that token), entropies (nats, full vocabulary, temperature 1) and offsets
  (character index in the completion where the token starts, so steps can be located in text).

One forward pass per batch gives the final hidden states; the LM head then runs over chunks of
`chunk_positions` completion positions, so [tokens x vocab] float32 logits are never all held at
once (prompt positions never reach the head). Prompts are chat-templated text or token ids;
completions are text (tokenized alone, offsets from the tokenizer) or token ids (e.g. the ids a
generator produced, offsets from incremental decoding: then scores match the generation exactly).

Example:
    scored = score(model, tok, [(prompt, "3 + 4 = 7.\\n\\nSo \\\\boxed{7}")])
    scored[0].entropies[:5], scored[0].offsets[:5]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from heal_batch.backends.tokens import decode_with_offsets, encode

Text = str | Sequence[int]


@dataclass(frozen=True)
class Scored:
    """Per completion token: id, log-probability, entropy (nats), start offset in the completion."""

    token_ids: list[int]
    logprobs: list[float]
    entropies: list[float]
    offsets: list[int]


def score(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[Text, Text]],
    chunk_positions: int = 256,
    batch_size: int = 8,
) -> list[Scored]:
    """Score every completion given its prompt (see the module docstring).

    Output order = input order."""
    import torch

    items = [_tokenize(tokenizer, i, p, c) for i, (p, c) in enumerate(pairs)]
    order = sorted(range(len(items)), key=lambda i: len(items[i][0]) + len(items[i][1]))
    head = _head(model)
    results: list[Scored | None] = [None] * len(items)
    checked = False
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            hidden, ids = _forward(model, tokenizer, [items[i] for i in idx])
            if not checked:
                first = items[idx[0]]
                _check_head(model, head, hidden, ids, len(first[0]) + len(first[1]))
                checked = True
            per_row = _score_rows(head, hidden, ids, [items[i] for i in idx], chunk_positions)
            for i, (lps, ents) in zip(idx, per_row, strict=True):
                completion, offsets = items[i][1], items[i][2]
                results[i] = Scored(completion, lps, ents, offsets)
    return results  # type: ignore[return-value]


def _tokenize(tokenizer: Any, index: int, prompt: Text, completion: Text):
    """(prompt ids, completion ids, completion offsets)."""
    p_ids = encode(tokenizer, prompt) if isinstance(prompt, str) else [int(t) for t in prompt]
    if not p_ids:
        raise ValueError(f"pair {index}: empty prompt; the first completion token needs a prefix")
    if isinstance(completion, str):
        enc = tokenizer(completion, add_special_tokens=False, return_offsets_mapping=True)
        return p_ids, list(enc["input_ids"]), [int(s) for s, _ in enc["offset_mapping"]]
    c_ids = [int(t) for t in completion]
    return p_ids, c_ids, decode_with_offsets(tokenizer, c_ids, context=p_ids)[1]


def _forward(model: Any, tokenizer: Any, items: list):
    """Right-padded batch -> (final hidden states [B, T, H], input ids [B, T])."""
    import torch

    seqs = [p + c for p, c, _ in items]
    width = max(len(s) for s in seqs)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=model.device)
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=model.device)
    out = model.base_model(input_ids=ids, attention_mask=mask)
    return out.last_hidden_state, ids


def _score_rows(head, hidden, ids, items: list, chunk: int):
    """All completion positions of the batch, flattened, through the head in chunks."""
    import torch

    from heal_batch.backends.entropy import entropy_and_logprob

    h_parts, t_parts, sizes = [], [], []
    for row, (p, c, _) in enumerate(items):
        # Position t predicts token t + 1: completion tokens sit at len(p) .. len(p)+len(c)-1.
        h_parts.append(hidden[row, len(p) - 1 : len(p) + len(c) - 1])
        t_parts.append(ids[row, len(p) : len(p) + len(c)])
        sizes.append(len(c))
    h, targets = torch.cat(h_parts), torch.cat(t_parts)
    ents, lps = [], []
    for s in range(0, h.shape[0], chunk):
        ent, lp = entropy_and_logprob(head(h[s : s + chunk]), targets[s : s + chunk])
        ents.append(ent)
        lps.append(lp)
    ent_all = torch.cat(ents).cpu().tolist() if ents else []
    lp_all = torch.cat(lps).cpu().tolist() if lps else []
    out, start = [], 0
    for n in sizes:
        out.append((lp_all[start : start + n], ent_all[start : start + n]))
        start += n
    return out


def _head(model: Any):
    """hidden -> logits as the model's own forward computes them (known post-head transforms)."""
    import torch

    lm_head = model.get_output_embeddings()
    cfg = (
        model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    )
    softcap = getattr(cfg, "final_logit_softcapping", None)  # Gemma 2/3
    scale = getattr(cfg, "logit_scale", None)  # Cohere multiplies
    divide = getattr(cfg, "logits_scaling", None)  # Granite divides

    def head(h):
        logits = lm_head(h)
        if scale is not None:
            logits = logits * scale
        if divide is not None:
            logits = logits / divide
        if softcap is not None:
            logits = torch.tanh(logits / softcap) * softcap
        return logits

    return head


def _check_head(model: Any, head, hidden, ids, length: int) -> None:
    """Once per call: our head must reproduce the model's own logits on a short prefix of row 0."""
    import torch

    n = min(8, length)
    ref = model(input_ids=ids[:1, :n]).logits[0, -1].float()
    ours = head(hidden[:1, n - 1]).float()[0]
    tol = 1e-3 if ref.dtype == torch.float32 and hidden.dtype == torch.float32 else 5e-2
    if not torch.allclose(ref, ours, atol=tol * max(1.0, ref.abs().max().item()), rtol=0):
        raise RuntimeError(
            f"{type(model).__name__}: logits from hidden states through the LM head differ from "
            "the model's forward; it applies a transform heal_batch.backends.scorer._head lacks"
        )
