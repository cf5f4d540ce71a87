"""Token-level text helpers shared by the generators and the scorer.

decode_with_offsets: token ids -> (text, start offset of each token in that text), decoding
  incrementally after a few context tokens so leading spaces and multi-byte characters come out
  exactly as in the full decode.
finish_sample: raw generated ids + per-step logprobs/entropies -> a Sample (cut at EOS or at the
  first stop string; the same rule for every backend).

Example:
    text, offsets = decode_with_offsets(tok, [1234, 88], context=prompt_ids)
    text[offsets[1]:]   # the text of token 88 (and whatever follows)
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from heal_batch.backends.base import Sample

CONTEXT_TOKENS = 8  # enough prompt tail for decoders that look back (spaces, byte fallback)


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of already-templated text: no BOS/EOS added (the chat template has them)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def decode_with_offsets(
    tokenizer: Any, ids: Sequence[int], context: Sequence[int] = ()
) -> tuple[str, list[int]]:
    """Text of `ids` (special tokens skipped) and, per token, the character index where it starts.

    A token that completes no character yet (part of a multi-byte character) gets the offset of the
    character it belongs to, so offsets never decrease and len(offsets) == len(ids).
    """
    ctx = list(context)[-CONTEXT_TOKENS:]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        from tokenizers.decoders import DecodeStream

        stream = DecodeStream(ids=ctx, skip_special_tokens=True)
        return _collect(stream.step(backend, int(i)) for i in ids)
    return _collect(_window_pieces(tokenizer, ctx, list(ids)))


def finish_sample(
    tokenizer: Any,
    generated: Sequence[int],
    logprobs: Sequence[float],
    entropies: Sequence[float],
    *,
    context: Sequence[int],
    eos_ids: Collection[int],
    stop: Sequence[str],
    entropy_method: str,
    seed: int,
) -> Sample:
    """Cut a raw generation and build its Sample.

    Rules: the first EOS id ends the sample (EOS excluded, finish "stop"); otherwise the first stop
    string ends it, kept in the text, with every token up to the one that completes it (finish
    "stop"); otherwise finish "length". logprobs/entropies are per generated step and are cut alike.
    """
    ids = [int(t) for t in generated]
    end = next((i for i, t in enumerate(ids) if t in eos_ids), None)
    reason = "stop" if end is not None else "length"
    ids = ids[:end] if end is not None else ids
    text, offsets = decode_with_offsets(tokenizer, ids, context)
    cut = _first_stop(text, stop)
    if cut is not None:
        n_tok = sum(1 for o in offsets if o < cut)
        ids, offsets, text, reason = ids[:n_tok], offsets[:n_tok], text[:cut], "stop"
    n = len(ids)
    return Sample(
        text=text,
        token_ids=ids,
        logprobs=[float(x) for x in logprobs[:n]],
        entropies=[float(x) for x in entropies[:n]],
        entropy_method=entropy_method,
        finish_reason=reason,
        seed=seed,
        offsets=offsets,
    )


def _first_stop(text: str, stop: Sequence[str]) -> int | None:
    """Character index just after the earliest stop string in text, or None."""
    hits = [(i, len(s)) for s in stop if s and (i := text.find(s)) >= 0]
    if not hits:
        return None
    i, length = min(hits)
    return i + length


def _collect(pieces) -> tuple[str, list[int]]:
    parts: list[str] = []
    offsets: list[int] = []
    length = 0
    for piece in pieces:
        offsets.append(length)
        if piece:
            parts.append(piece)
            length += len(piece)
    return "".join(parts), offsets


def _window_pieces(tokenizer: Any, ctx: list[int], ids: list[int]):
    """Incremental decoding for tokenizers without a Rust backend (vLLM's prefix/read windows).

    Yields one piece per token of ids ("" while a character is incomplete); a final flush adds any
    trailing bytes to the last piece.
    """
    all_ids = ctx + ids
    prefix, read = 0, len(ctx)
    for i in range(len(ctx), len(all_ids)):
        before = tokenizer.decode(all_ids[prefix:read], skip_special_tokens=True)
        now = tokenizer.decode(all_ids[prefix : i + 1], skip_special_tokens=True)
        if len(now) > len(before) and not now.endswith("\ufffd"):
            yield now[len(before) :]
            prefix, read = read, i + 1
        elif i == len(all_ids) - 1:
            yield now[len(before) :]  # incomplete tail: emit what the decoder gives
        else:
            yield ""
