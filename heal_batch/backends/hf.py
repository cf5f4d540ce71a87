"""transformers generator: batched generate with exact per-token entropy and seeded samples.

Inputs -> outputs: chat-templated prompts (or SampleRequests) + GenerationParams -> Samples
(see backends/base.py), entropy_method "exact".

How it works: generate() runs in greedy mode with one extra logits processor, _SeededSampler, that
(1) receives the raw logits of each step (float32, before any temperature/top-k/top-p), (2) computes
the exact entropy and the chosen token's log-probability from them, and (3) picks the token itself
with one CPU torch.Generator per row, seeded seed + i for sample i. It returns a mask that leaves
only that token, which greedy decoding then takes. So:
  - entropies and logprobs describe the model's distribution at temperature 1 (what the teacher
    believes), not the temperature-adjusted sampling distribution; the scorer reports the same;
  - only [batch] floats are kept per step, never [batch, steps, vocab] logits;
  - a row's random stream does not depend on the other rows, so a sample re-drawn alone or in a
    different batch gives the same tokens (up to rare float ties from different padding);
  - CPU generators give the same draws on CPU and GPU.

Soft-fail: a prompt as long as the model's context (``max_position_embeddings``) or longer is not
generated; its samples come back empty with finish_reason "length" (``base.prompt_overflow``), as
the vLLM backend does past ``max_model_len``, and the rest of the batch runs.

Example:
    gen = HFGenerator.from_spec("smollm2-135m-instruct", dtype="bfloat16")
    samples = gen.generate([prompt], GenerationParams(n=4, temperature=0.7, max_new_tokens=128))
    gen.last_stats   # {"tokens": ..., "seconds": ..., "tokens_per_s": ...}
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from heal_batch.backends.base import (
    GenerationParams,
    Sample,
    SampleRequest,
    as_requests,
    overflow_samples,
)
from heal_batch.backends.tokens import encode, finish_sample

# Generation-config fields that would change logits before our sampler sees them: forced neutral
# so a model's generation_config.json (e.g. repetition_penalty 1.1) cannot leak in.
# (Temperature/top-k/top-p are not listed: greedy mode never builds those warpers.)
_NEUTRAL = {
    "do_sample": False,
    "num_beams": 1,
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "min_new_tokens": 0,
    "bad_words_ids": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "sequence_bias": None,
    "renormalize_logits": False,
}


@dataclass(frozen=True)
class _Row:
    request: int
    sample: int
    seed: int
    ids: list[int]


class HFGenerator:
    """Generator over a loaded transformers causal LM (see the module docstring)."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 16, name: str = "") -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.name = name or getattr(model.config, "_name_or_path", "")
        self.last_stats: dict[str, float] = {}
        # The model's context (positions it was trained on): a prompt of this length or more is
        # not generated (soft-fail, as the vLLM backend does past max_model_len). None: no limit.
        self.max_context: int | None = getattr(model.config, "max_position_embeddings", None)

    @classmethod
    def from_spec(
        cls,
        spec: str,
        dtype: str = "auto",
        device: str = "auto",
        batch_size: int = 16,
        trust_remote_code: bool = False,
    ) -> HFGenerator:
        from heal_batch.backends.models import load_model_and_tokenizer

        model, tok = load_model_and_tokenizer(spec, dtype, trust_remote_code, device)
        return cls(model, tok, batch_size=batch_size, name=spec)

    def describe(self) -> dict[str, str]:
        import torch
        import transformers

        return {
            "backend": "hf",
            "model": self.name,
            "dtype": str(self.model.dtype),
            "device": str(self.model.device),
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "entropy_method": "exact",
        }

    def generate(
        self, prompts: Sequence[str | SampleRequest], params: GenerationParams
    ) -> list[list[Sample]]:
        requests = as_requests(prompts, params)
        encoded = [encode(self.tokenizer, r.prompt) for r in requests]
        limit = self.max_context
        out: list[list[Sample | None]] = [
            overflow_samples(r, "exact") if limit and len(ids) >= limit else [None] * r.n
            for r, ids in zip(requests, encoded, strict=True)
        ]
        rows = [
            _Row(ri, i, r.seed + i, encoded[ri])
            for ri, r in enumerate(requests)
            for i in range(r.n)
            if out[ri][i] is None
        ]
        # Similar lengths together: less padding. Order does not change any sample.
        rows.sort(key=lambda row: len(row.ids))
        start, tokens = time.perf_counter(), 0
        for b in range(0, len(rows), self.batch_size):
            batch = rows[b : b + self.batch_size]
            for row, sample in zip(batch, self._generate_batch(batch, params), strict=True):
                out[row.request][row.sample] = sample
                tokens += len(sample.token_ids)
        seconds = time.perf_counter() - start
        self.last_stats = {
            "tokens": tokens,
            "seconds": seconds,
            "rows": len(rows),
            "tokens_per_s": tokens / seconds if seconds else 0.0,
        }
        return out  # type: ignore[return-value]

    def _generate_batch(self, batch: list[_Row], params: GenerationParams) -> list[Sample]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        ids, mask = _left_pad([r.ids for r in batch], pad, self.model.device)
        width = ids.shape[1]
        eos = self._eos_ids()
        sampler = _SeededSampler([r.seed for r in batch], params)
        stopper = StoppingCriteriaList(
            [_StopStrings(tok, params.stop, width)] if params.stop else []
        )
        config = GenerationConfig(
            **_NEUTRAL,
            max_new_tokens=params.max_new_tokens,
            eos_token_id=sorted(eos),
            pad_token_id=pad,
        )
        with torch.inference_mode():
            seqs = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                generation_config=config,
                logits_processor=LogitsProcessorList([sampler]),
                stopping_criteria=stopper,
            )
        ents, lps = sampler.results()
        return [
            finish_sample(
                tok,
                seqs[j, width:].tolist(),
                lps[j],
                ents[j],
                context=row.ids,
                eos_ids=eos,
                stop=params.stop,
                entropy_method="exact",
                seed=row.seed,
            )
            for j, row in enumerate(batch)
        ]

    def _eos_ids(self) -> set[int]:
        eos = {self.tokenizer.eos_token_id}
        cfg = getattr(self.model, "generation_config", None)
        extra = getattr(cfg, "eos_token_id", None)
        eos.update(extra if isinstance(extra, list | tuple) else [extra])
        return {int(e) for e in eos if e is not None}


def _left_pad(seqs: list[list[int]], pad: int, device: Any):
    """(input_ids, attention_mask), both [len(seqs), longest], padded on the left."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs], device=device)
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=device)
    return ids, mask


class _SeededSampler:
    """Logits processor: records exact entropy + chosen logprob from raw logits, then samples.

    Returns scores that are -inf everywhere except the chosen token, so greedy decoding takes it.
    """

    def __init__(self, seeds: list[int], params: GenerationParams) -> None:
        import torch

        self.params = params
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self._ent: list[Any] = []
        self._lp: list[Any] = []

    def __call__(self, input_ids, scores):
        import torch

        from heal_batch.backends.entropy import entropy_and_logprob

        raw = scores.float()
        chosen = self._choose(raw)
        ent, lp = entropy_and_logprob(raw, chosen)
        self._ent.append(ent)
        self._lp.append(lp)
        masked = torch.full_like(scores, float("-inf"))
        return masked.scatter_(1, chosen[:, None], 0.0)

    def results(self) -> tuple[list[list[float]], list[list[float]]]:
        """Per row: (entropies, logprobs), one per generated step."""
        import torch

        if not self._ent:
            return [[] for _ in self.generators], [[] for _ in self.generators]
        ent = torch.stack(self._ent, 1).cpu().tolist()
        lp = torch.stack(self._lp, 1).cpu().tolist()
        return ent, lp

    def _choose(self, raw):
        import torch

        p = self.params
        if p.temperature == 0:
            return raw.argmax(-1)
        logits = raw / p.temperature
        if p.top_k and p.top_k < logits.shape[-1]:
            kth = torch.topk(logits, p.top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        # One uniform per row from that row's own generator (CPU), then inverse-CDF sampling.
        u = torch.tensor(
            [torch.rand((), generator=g).item() for g in self.generators], dtype=torch.float64
        ).to(raw.device)
        if p.top_p < 1.0:
            logits, order = logits.sort(-1, descending=True)
            probs = torch.softmax(logits, -1)
            outside = (probs.cumsum(-1) - probs) > p.top_p  # the top token always stays
            idx = _inverse_cdf(probs.masked_fill(outside, 0.0), u)
            return order.gather(1, idx[:, None]).squeeze(1)
        return _inverse_cdf(torch.softmax(logits, -1), u)


def _inverse_cdf(probs, u):
    """Index j with cdf[j-1] <= u * total < cdf[j], per row (zero-probability tokens never hit)."""
    import torch

    cdf = probs.double().cumsum(-1)
    target = (u * cdf[:, -1]).unsqueeze(1)
    idx = torch.searchsorted(cdf, target, right=True).squeeze(1)
    return idx.clamp_(max=probs.shape[-1] - 1)


class _StopStrings:
    """Stopping criterion: a row is done once its generated text (prompt excluded) holds a stop
    string."""

    def __init__(self, tokenizer: Any, stop: Sequence[str], prompt_width: int) -> None:
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.start = prompt_width
        self.window = 4 + max(len(s) for s in self.stop)  # tokens; each non-special >= 1 char

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        lo = max(self.start, input_ids.shape[1] - self.window)
        tails = self.tokenizer.batch_decode(input_ids[:, lo:], skip_special_tokens=True)
        done = [any(s in t for s in self.stop) for t in tails]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
