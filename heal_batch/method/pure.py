"""PURE: score repaired trajectories by a perplexity-uncertainty ratio and drop likely shortcuts.

Inputs: per-token log-probabilities of the hint-free stitched trajectory under the scoring model
(teacher-forced, given the problem), its steps (``steps.py``), the index of the first step after
the cut, and the token span of the final answer. Outputs: a ``ScoredCandidate`` per candidate,
then one ``Decision`` (keep, reason) per candidate from ``decide`` over the pooled list.

- PPL_k = exp(-mean log p over the tokens of step k), for the steps after the cut.
- U = mean negative log-likelihood of the tokens inside the last ``\\boxed{...}``.
- R = max_k PPL_k / (exp(U) + eps). A shortcut makes an unjustified leap (one step with high
  perplexity) and still emits the answer confidently (low U): high R.

R alone misses the barest shortcut: a continuation that writes the answer straight after the cut.
Scored hint-free, the answer IS the leap, so U is high, R is low and the ratio rule keeps it (we
measured this on SmolLM2). Two rules of ours (the paper gives none; both can be turned off) close
the gap: a candidate needs ``min_reasoning_tokens`` tokens between the cut and its answer, and its
U must not exceed a percentile of the reference's U: an answer the reasoning does not make
probable was not derived. A percentile needs ``min_reference`` reference values to be applied.

Exactness across shards: ``decide`` is a function of the pooled multiset of (candidate_id, ratio)
and the reference ratios only; it does not depend on input order. Scoring per shard and then one
``decide`` over the concatenation of all shards' ``ScoredCandidate``s gives exactly the decisions of
a single-process run. Running ``decide`` per shard would not (the top-lambda share is global).

Example::

    >>> pure_ratio([1.2, 3.0], answer_nll=0.0, eps=0.01)  # 3.0 / (1 + 0.01)
    2.9702970297029703
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from heal_batch.method.steps import Step, check_aligned
from heal_batch.records import CANDIDATE_KINDS, OMIT_AT_DEFAULT

KEPT = "kept"
TOP_LAMBDA = "top_lambda"
NO_STEPS_AFTER_CUT = "no_steps_after_cut"
NO_BOXED_ANSWER = "no_boxed_answer"
NO_REASONING = "no_reasoning_after_cut"
POOLINGS = ("per_kind", "together")
REFERENCES = ("natural", "guided")


@dataclass(frozen=True)
class PureConfig:
    """PURE, in one place (the ``pure`` section): score computes R with ``eps``, curriculum
    applies the rest, pooled over every score shard (``decide``).

    Args:
        eps: epsilon in R = max step PPL / (exp(U) + eps).
        kinds: candidate kinds PURE filters (answer_guided, repair); other samples are not filtered.
        pooling: per_kind (the top-lambda share and the reference rules are applied to each
            kind's pool) or together (one pool for all kinds).
        drop_top_fraction: lambda; this share of each pool's scored candidates with the highest R
            is dropped (rounded up: any lambda > 0 drops at least one). 0 keeps all, 1 drops all.
        reference: the reference distribution of the two percentile rules: ``natural``
            (naturally correct trajectories, scored over all steps: the paper's reading) or
            ``guided`` (ours: answer-guided samples of easy problems, ``repair.reference_problems``;
            hint-conditioned text scored hint-free, as a repair is, on problems the teacher solves).
        reference_percentile: also drop candidates whose R is above this percentile (linear
            interpolation) of the reference's R; null turns the rule off. With no reference
            ratios the rule is off as well.
        min_reasoning_tokens: drop candidates with fewer tokens than this between the cut and
            the answer (a bare answer after the hint; 0: off; candidates that do not report the
            count are not checked).
        answer_reference_percentile: drop candidates whose answer uncertainty U is above this
            percentile of the reference's U: the reasoning did not derive the answer (null, or
            no reference: off).
        min_reference: the fewest reference values a percentile rule is applied with; below it
            that rule is off (a 95th percentile of 2 values is their maximum, not an estimate:
            it dropped 7 of 10 derived repairs in one demo run). Curriculum counts and warns.
    """

    eps: float = 0.01
    kinds: list[str] = field(default_factory=lambda: list(CANDIDATE_KINDS))
    pooling: Literal["per_kind", "together"] = "per_kind"
    reference: Literal["natural", "guided"] = field(default="natural", metadata=OMIT_AT_DEFAULT)
    drop_top_fraction: float = 0.2
    reference_percentile: float | None = 95.0
    min_reasoning_tokens: int = 8
    answer_reference_percentile: float | None = 95.0
    min_reference: int = 10

    def __post_init__(self) -> None:
        if self.eps < 0:
            raise ValueError(f"pure.eps must be >= 0, got {self.eps}")
        for kind in self.kinds:
            if kind not in CANDIDATE_KINDS:
                raise ValueError(f"pure.kinds: {kind!r} is not one of {', '.join(CANDIDATE_KINDS)}")
        if self.reference not in REFERENCES:
            raise ValueError(
                f"pure.reference {self.reference!r} is not one of {', '.join(REFERENCES)}"
            )
        if self.pooling not in POOLINGS:
            raise ValueError(f"pure.pooling {self.pooling!r} is not one of {', '.join(POOLINGS)}")
        if not 0 <= self.drop_top_fraction <= 1:
            raise ValueError(
                f"pure.drop_top_fraction must be in [0, 1], got {self.drop_top_fraction}"
            )
        for key in ("reference_percentile", "answer_reference_percentile"):
            q = getattr(self, key)
            if q is not None and not 0 <= q <= 100:
                raise ValueError(f"pure.{key} must be in [0, 100] or null, got {q}")
        for key in ("min_reasoning_tokens", "min_reference"):
            if getattr(self, key) < 0:
                raise ValueError(f"pure.{key} must be >= 0, got {getattr(self, key)}")


@dataclass(frozen=True, slots=True)
class ScoredCandidate:
    """One candidate's PURE score. ``ratio`` is None when it could not be scored; then
    ``unscored_reason`` says why (``no_steps_after_cut`` or ``no_boxed_answer``).
    ``reasoning_tokens``: tokens between the cut and the answer (None = not measured)."""

    candidate_id: str
    ratio: float | None
    max_step_ppl: float | None = None
    answer_nll: float | None = None
    unscored_reason: str | None = None
    reasoning_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """Keep or drop one candidate; ``reason`` is ``kept`` or the rule that dropped it."""

    candidate_id: str
    keep: bool
    reason: str


def step_perplexities(
    token_logprobs: Sequence[float], steps: Sequence[Step], first_step: int = 0
) -> list[float]:
    """PPL_k = exp(-mean log-prob of step k) for ``k >= first_step`` (inf on overflow)."""
    check_aligned(token_logprobs, steps, what="token_logprobs")
    return [
        _exp(-math.fsum(token_logprobs[s.token_start : s.token_end]) / s.n_tokens)
        for s in steps[first_step:]
    ]


def first_step_after(steps: Sequence[Step], cut_char: int) -> int:
    """Index of the first step holding any text at or after ``cut_char`` (``len(steps)`` if none).

    ``cut_char`` is where the continuation starts in the hint-free text
    (``hints.strip_hint_with_cut``); 0 for a natural trajectory (all steps count). A short last
    prefix step merged into the continuation's first step counts as after the cut.
    """
    return next((s.index for s in steps if s.char_end > cut_char), len(steps))


def answer_uncertainty(token_logprobs: Sequence[float], answer_span: tuple[int, int]) -> float:
    """U = mean negative log-prob of tokens ``[start, end)``; ValueError for an empty span."""
    start, end = answer_span
    if not 0 <= start < end <= len(token_logprobs):
        raise ValueError(
            f"answer span {answer_span} is empty or outside {len(token_logprobs)} tokens"
        )
    return -math.fsum(token_logprobs[start:end]) / (end - start)


def pure_ratio(step_ppls: Sequence[float], answer_nll: float, eps: float = 0.01) -> float:
    """R = max(step_ppls) / (exp(answer_nll) + eps); ValueError when ``step_ppls`` is empty."""
    if not step_ppls:
        raise ValueError("pure_ratio needs at least one step perplexity")
    denom = _exp(answer_nll) + eps
    return max(step_ppls) / denom if denom > 0 else math.inf


def score_candidate(
    candidate_id: str,
    token_logprobs: Sequence[float],
    steps: Sequence[Step],
    first_step: int,
    answer_span: tuple[int, int] | None,
    eps: float = 0.01,
    cut_token: int | None = None,
) -> ScoredCandidate:
    """Everything above for one candidate; unscorable candidates get ``ratio=None`` and a reason.

    ``cut_token`` is the first token after the cut; with it, ``reasoning_tokens`` is set.
    """
    ppls = step_perplexities(token_logprobs, steps, first_step)
    if not ppls:
        return ScoredCandidate(candidate_id, None, unscored_reason=NO_STEPS_AFTER_CUT)
    if answer_span is None:
        return ScoredCandidate(candidate_id, None, max(ppls), unscored_reason=NO_BOXED_ANSWER)
    u = answer_uncertainty(token_logprobs, answer_span)
    reasoning = None if cut_token is None else max(0, answer_span[0] - cut_token)
    return ScoredCandidate(candidate_id, pure_ratio(ppls, u, eps), max(ppls), u, None, reasoning)


def first_token_at(offsets: Sequence[tuple[int, int]], char: int) -> int:
    """Index of the first token that starts at or after ``char`` (``len(offsets)`` if none)."""
    return next((i for i, (start, _) in enumerate(offsets) if start >= char), len(offsets))


def decide(
    candidates: Sequence[ScoredCandidate],
    reference_ratios: Sequence[float],
    cfg: PureConfig,
    reference_answer_nlls: Sequence[float] = (),
) -> list[Decision]:
    """Keep/drop every candidate (same order as ``candidates``), pooled over the whole list.

    Rules, first match wins: unscored -> its ``unscored_reason``; fewer than
    ``min_reasoning_tokens`` after the cut -> ``no_reasoning_after_cut``; among the top
    ``ceil(lambda * n)`` by R of the n candidates left (ties broken by ascending ``candidate_id``)
    -> ``top_lambda``; R above the reference percentile -> ``above_reference_q95`` (for q=95);
    U above the reference answers' percentile -> ``answer_not_derived_q95``; else ``kept``. A
    percentile rule whose reference has fewer than ``min_reference`` values is off.
    Raises ValueError on duplicate candidate ids or NaN ratios.
    """
    _check_candidates(candidates, [*reference_ratios, *reference_answer_nlls])
    early = {c.candidate_id: r for c in candidates if (r := _structural_drop(c, cfg))}
    ranked = sorted(
        (c for c in candidates if c.candidate_id not in early),
        key=lambda c: (-(c.ratio or 0.0), c.candidate_id),
    )
    n_drop = math.ceil(round(cfg.drop_top_fraction * len(ranked), 9))
    top = {c.candidate_id for c in ranked[:n_drop]}
    limit = _threshold(reference_ratios, cfg.reference_percentile, cfg.min_reference)
    u_limit = _threshold(reference_answer_nlls, cfg.answer_reference_percentile, cfg.min_reference)
    out = []
    for c in candidates:
        if c.candidate_id in early:
            reason = early[c.candidate_id]
        elif c.candidate_id in top:
            reason = TOP_LAMBDA
        elif limit is not None and (c.ratio or 0.0) > limit:
            reason = f"above_reference_q{cfg.reference_percentile:g}"
        elif u_limit is not None and c.answer_nll is not None and c.answer_nll > u_limit:
            reason = f"answer_not_derived_q{cfg.answer_reference_percentile:g}"
        else:
            reason = KEPT
        out.append(Decision(c.candidate_id, reason == KEPT, reason))
    return out


def _structural_drop(c: ScoredCandidate, cfg: PureConfig) -> str | None:
    """Why ``c`` cannot enter the ratio rules (unscored, or no reasoning after the cut)."""
    if c.ratio is None:
        return c.unscored_reason or NO_STEPS_AFTER_CUT
    if c.reasoning_tokens is not None and c.reasoning_tokens < cfg.min_reasoning_tokens:
        return NO_REASONING
    return None


def reference_too_small(references: Sequence[Sequence[float]], cfg: PureConfig) -> bool:
    """Whether a rule that is on is off for want of reference values (none at all is not "too
    small": it is a run without a reference, the rules' documented off state)."""
    rules = (cfg.reference_percentile, cfg.answer_reference_percentile)
    return any(
        q is not None and values and not _enough(values, cfg.min_reference)
        for q, values in zip(rules, references, strict=True)
    )


def _threshold(values: Sequence[float], q: float | None, min_n: int) -> float | None:
    """The q-th percentile of ``values``; None when the rule is off (q null, or too few)."""
    return percentile(values, q) if q is not None and _enough(values, min_n) else None


def _enough(values: Sequence[float], min_n: int) -> bool:
    return len(values) >= max(min_n, 1)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation (numpy's default method)."""
    if not values:
        raise ValueError("percentile of an empty list")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    frac = pos - lo
    if frac == 0 or ordered[hi] == ordered[lo]:  # also avoids inf - inf
        return ordered[lo]
    return ordered[lo] + (ordered[hi] - ordered[lo]) * frac


def _check_candidates(
    candidates: Sequence[ScoredCandidate], reference_values: Sequence[float]
) -> None:
    seen: set[str] = set()
    for c in candidates:
        if c.candidate_id in seen:
            raise ValueError(f"duplicate candidate_id {c.candidate_id!r}: ids must be unique")
        seen.add(c.candidate_id)
        if c.ratio is not None and math.isnan(c.ratio):
            raise ValueError(f"candidate {c.candidate_id!r} has a NaN PURE ratio")
    if any(math.isnan(r) for r in reference_values):
        raise ValueError("the reference ratios or answer NLLs contain NaN")


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf
