"""The generation contract shared by every backend (transformers, vLLM).

Inputs -> outputs:
  prompts (chat-templated text, optionally ending mid-assistant-turn) + GenerationParams
    -> for each prompt, n Samples: continuation text, token ids, per-token chosen logprob and
       entropy.

A prompt that ends inside the assistant turn (render_chat(..., assistant_prefix="Step 1: ...")) is
continued: the Sample text is only the new text, so `prefix + sample.text` is the whole turn. GEAR
uses this to let the teacher carry on after a hint.

Seeds: sample i of a request with seed s is drawn with seed s + i in every backend (vLLM does the
same for n > 1), so one sample can be re-drawn alone. Backends differ in their random streams, so
the same seed gives different text on HF and vLLM.

Example:
    gen = HFGenerator.from_spec("smollm2-135m-instruct")
    prompt = render_chat(gen.tokenizer, "Be brief.", "What is 2 + 3?")
    [[s0, s1]] = gen.generate(
        [SampleRequest(prompt, seed=7, n=2)], GenerationParams(max_new_tokens=64)
    )
    s0.text, s0.entropies[:3], s0.finish_reason, s0.seed   # seed == 7, s1.seed == 8
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings for one generate call.

    n: samples per prompt when a prompt is passed as plain text (a SampleRequest carries its own n).
    temperature: 0 means greedy. top_p: nucleus mass (1.0 = off). top_k: 0 = off.
    max_new_tokens: cap on generated tokens (finish_reason "length" when reached).
    seed: base seed for plain-text prompts; their request seed is derived from (seed, prompt text).
    stop: strings that end a sample; the text is cut just after the first one (it is kept).
    """

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256
    seed: int = 0
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        if self.n < 1:
            problems.append(f"n={self.n} (expected >= 1)")
        if self.temperature < 0:
            problems.append(f"temperature={self.temperature} (expected >= 0)")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p={self.top_p} (expected in (0, 1])")
        if self.top_k < 0:
            problems.append(f"top_k={self.top_k} (expected >= 0, 0 = off)")
        if self.max_new_tokens < 1:
            problems.append(f"max_new_tokens={self.max_new_tokens} (expected >= 1)")
        if problems:
            raise ValueError("invalid GenerationParams: " + ", ".join(problems))
        object.__setattr__(self, "stop", tuple(self.stop))


@dataclass(frozen=True)
class SampleRequest:
    """One prompt exactly as sent to the model, the seed of its first sample, how many samples."""

    prompt: str
    seed: int
    n: int = 1


@dataclass(frozen=True)
class Sample:
    """One generated continuation.

    token_ids: generated tokens, without the final EOS. logprobs[i] / entropies[i] belong to
    token_ids[i]: the chosen token's log-probability and the entropy (nats) of the model's
    next-token distribution at temperature 1 (before temperature/top-p). offsets[i] is the character
    index in `text` where token i starts. entropy_method: "exact" (full vocabulary) or "topk-K"
    (renormalised top-K estimate). seed: the seed this sample was drawn with.
    """

    text: str
    token_ids: list[int]
    logprobs: list[float]
    entropies: list[float]
    entropy_method: str
    finish_reason: FinishReason
    seed: int
    offsets: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Generator(Protocol):
    """A text generator with per-token logprobs and entropies (see the module docstring).

    tokenizer: the model's HF tokenizer (render prompts with it: render_chat(gen.tokenizer, ...)).
    """

    tokenizer: Any

    def generate(
        self, prompts: Sequence[str | SampleRequest], params: GenerationParams
    ) -> list[list[Sample]]:
        """One list of Samples per prompt, in input order; list i has requests[i].n entries."""
        ...

    def describe(self) -> dict[str, str]:
        """Backend, model and library versions, for manifests."""
        ...


def overflow_samples(request: SampleRequest, entropy_method: str) -> list[Sample]:
    """The samples of a prompt that leaves no room to generate (soft-fail: the prompt is not
    sent, the rest of the batch runs): ``request.n`` empty samples with finish_reason "length"."""
    seeds = range(request.seed, request.seed + request.n)
    return [Sample("", [], [], [], entropy_method, "length", seed) for seed in seeds]


def prompt_overflow(sample: Sample) -> bool:
    """True for a sample of ``overflow_samples``: no token, finish "length" (a generated sample has
    at least one token, or ends with EOS as "stop", since max_new_tokens >= 1)."""
    return not sample.token_ids and sample.finish_reason == "length"


def as_requests(
    prompts: Sequence[str | SampleRequest], params: GenerationParams
) -> list[SampleRequest]:
    """Plain prompts become SampleRequest(prompt, prompt_seed(params.seed, prompt), params.n)."""
    out = []
    for p in prompts:
        if isinstance(p, SampleRequest):
            out.append(p)
        elif isinstance(p, str):
            out.append(SampleRequest(p, prompt_seed(params.seed, p), params.n))
        else:
            raise TypeError(f"prompt must be str or SampleRequest, got {type(p).__name__}")
    return out


def prompt_seed(base_seed: int, text: str) -> int:
    """A 31-bit seed from (base_seed, text): stable across runs, machines and batch layouts."""
    digest = hashlib.sha256(f"{base_seed}\x00{text}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def render_chat(
    tokenizer: Any,
    system: str | None,
    user: str,
    assistant_prefix: str | None = None,
    examples: Sequence[tuple[str, str]] = (),
) -> str:
    """Chat-template text ending where the assistant speaks next (plus assistant_prefix, if given).

    system None leaves the template's default (SmolLM2's adds its own system line). examples are
    earlier (user, assistant) turns: few-shot demonstrations. With assistant_prefix the prompt ends
    mid-turn, so a generator continues that text rather than starting a new answer.
    """
    messages = [] if system is None else [{"role": "system", "content": system}]
    for ex_user, ex_assistant in examples:
        messages += [
            {"role": "user", "content": ex_user},
            {"role": "assistant", "content": ex_assistant},
        ]
    messages.append({"role": "user", "content": user})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text + (assistant_prefix or "")
