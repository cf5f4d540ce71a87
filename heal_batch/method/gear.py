"""GEAR breakpoints: where to cut a failed trajectory before injecting a hindsight hint.

Input: per-token entropies of the completion (nats, one per token) and its steps (``steps.py``).
Output: a ``Breakpoint``; the kept prefix is ``text[:bp.char_index]`` = tokens
``[0, bp.token_index)``, i.e. everything before step ``bp.step_index``.

Strategies live in ``STRATEGIES`` (name -> function), so an ablation is a config change and a new
strategy is one registered function. All of them choose among the *candidate* steps: steps
``k >= 1`` that start within the first ``search_fraction`` of the tokens. With no candidate (one
step, or the first step is longer than the search window) every strategy cuts at step 0.

- ``entropy-surge`` (default): surge_k = E_k - mean(E_{k-w} .. E_{k-1}) (all earlier steps when
  k < w); the candidate with the largest surge above ``min_surge``; if none, the candidate with the
  highest step entropy.
- ``max-entropy``: the candidate with the highest step entropy.
- ``random``: a uniform candidate, from ``random.Random(seed)``.
- ``start``: step 0 (the whole trajectory is replaced; the hint comes first).
Ties go to the earliest step. ``backoff_steps`` then moves the cut back: 1 (default) cuts right
before the chosen step, 2 also removes the step before it, and so on (never before step 0).

Example::

    >>> from heal_batch.method.steps import split_token_strings
    >>> tokens = ["a\\n\\n", "b\\n\\n", "c\\n\\n"] + ["d"] * 6
    >>> text, steps = split_token_strings(tokens, min_step_tokens=1)
    >>> cfg = GearConfig(search_fraction=0.5)
    >>> find_breakpoint([0.1, 0.1, 2.0] + [0.1] * 6, steps, cfg).step_index
    2
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from heal_batch.method.hints import DEFAULT_HINT_TEMPLATE, DEFAULT_LEAK_PHRASES
from heal_batch.method.steps import (
    DEFAULT_DELIMITER,
    DEFAULT_MIN_STEP_TOKENS,
    Step,
    check_aligned,
    delimiter_pattern,
    step_means,
)
from heal_batch.records import OMIT_AT_DEFAULT


@dataclass(frozen=True)
class GearConfig:
    """GEAR breakpoint detection and hint settings.

    Args:
        strategy: breakpoint strategy, one of ``STRATEGIES`` (entropy-surge, max-entropy, random,
            start).
        window: w, how many previous steps the surge compares against.
        search_fraction: only steps starting in this leading fraction of tokens can be breakpoints.
        min_surge: a surge must exceed this (nats) to count; the default only absorbs float noise.
        min_step_tokens: steps shorter than this are merged into the next step.
        step_delimiter: what ends a step: blank_line (the paper's ``\\n\\n``) or line (every
            line break; for teachers that write one step per line, where blank lines are rare).
        hint_template: inline hint text; ``{answer}`` is replaced by the reference answer.
        leak_phrases: a continuation that contains any of these (case-insensitive) is rejected.
        backoff_steps: how many steps the cut backs up from the chosen step: 1 cuts right
            before it (the paper), 2 also drops the step before it, ... (stops at step 0).
    """

    strategy: str = "entropy-surge"
    window: int = 3
    search_fraction: float = 1 / 3
    min_surge: float = 1e-9
    min_step_tokens: int = DEFAULT_MIN_STEP_TOKENS
    step_delimiter: str = DEFAULT_DELIMITER
    hint_template: str = DEFAULT_HINT_TEMPLATE
    leak_phrases: tuple[str, ...] = DEFAULT_LEAK_PHRASES
    backoff_steps: int = field(default=1, metadata=OMIT_AT_DEFAULT)

    def __post_init__(self) -> None:
        get_strategy(self.strategy)
        if self.backoff_steps < 1:
            raise ValueError(f"gear.backoff_steps must be >= 1, got {self.backoff_steps}")
        if self.window < 1:
            raise ValueError(f"gear.window must be >= 1, got {self.window}")
        if not 0 < self.search_fraction <= 1:
            raise ValueError(f"gear.search_fraction must be in (0, 1], got {self.search_fraction}")
        if self.min_step_tokens < 1:
            raise ValueError(f"gear.min_step_tokens must be >= 1, got {self.min_step_tokens}")
        try:
            delimiter_pattern(self.step_delimiter)
        except ValueError as exc:
            raise ValueError(f"gear.step_delimiter: {exc}") from None
        if "{answer}" not in self.hint_template:
            raise ValueError("gear.hint_template must contain {answer}")


@dataclass(frozen=True)
class Breakpoint:
    """Where to cut: keep tokens ``[0, token_index)`` = text ``[0, char_index)``.

    ``step_index`` is the first step removed: the step the strategy chose, less
    ``backoff_steps - 1`` (``backoff`` says how many steps it moved back). ``surge`` is the
    surge of the chosen step (None for step 0 or an empty trajectory). ``reason`` says how it was
    chosen: max_surge, fallback_max_entropy, max_entropy, random, start, no_candidates or
    empty_trajectory.
    """

    step_index: int
    token_index: int
    char_index: int
    strategy: str
    reason: str
    surge: float | None
    step_entropies: tuple[float, ...]
    surges: tuple[float | None, ...]
    backoff: int = 0


@dataclass(frozen=True)
class StrategyInput:
    """What a strategy sees; ``candidates`` are step indices (ascending, never 0, maybe none).

    A strategy returns ``(step_index, reason)`` with ``0 <= step_index < len(step_entropies)``.
    """

    step_entropies: tuple[float, ...]
    surges: tuple[float | None, ...]
    candidates: tuple[int, ...]
    cfg: GearConfig
    seed: int


Strategy = Callable[[StrategyInput], tuple[int, str]]


def find_breakpoint(
    entropies: Sequence[float], steps: Sequence[Step], cfg: GearConfig, *, seed: int = 0
) -> Breakpoint:
    """Choose the breakpoint of one trajectory with ``cfg.strategy``.

    ``entropies`` has one finite value per token covered by ``steps`` (ValueError otherwise).
    ``seed`` only matters for ``random``; derive it from the sample id for reproducible shards.
    """
    strategy = get_strategy(cfg.strategy)
    check_aligned(entropies, steps, what="entropies")
    bad = next((i for i, e in enumerate(entropies) if math.isnan(e)), None)
    if bad is not None:
        raise ValueError(f"entropy of token {bad} is NaN")
    if not steps:
        return Breakpoint(0, 0, 0, cfg.strategy, "empty_trajectory", None, (), ())
    step_ent = tuple(step_means(entropies, steps))
    surges = tuple(step_surges(step_ent, cfg.window))
    inputs = StrategyInput(step_ent, surges, candidate_steps(steps, cfg.search_fraction), cfg, seed)
    k, reason = strategy(inputs)
    if not 0 <= k < len(steps):
        raise ValueError(f"strategy {cfg.strategy!r} returned step {k} of {len(steps)}")
    cut = max(0, k - (cfg.backoff_steps - 1))
    step = steps[cut]
    return Breakpoint(
        cut,
        step.token_start,
        step.char_start,
        cfg.strategy,
        reason,
        surges[k],
        step_ent,
        surges,
        k - cut,
    )


def step_surges(step_entropies: Sequence[float], window: int) -> list[float | None]:
    """surge_k = E_k - mean of the previous ``window`` step entropies; None for step 0."""
    out: list[float | None] = [None] if step_entropies else []
    for k in range(1, len(step_entropies)):
        prev = step_entropies[max(0, k - window) : k]
        out.append(step_entropies[k] - sum(prev) / len(prev))
    return out


def candidate_steps(steps: Sequence[Step], search_fraction: float) -> tuple[int, ...]:
    """Steps k >= 1 that start before ``search_fraction`` of the tokens."""
    limit = search_fraction * (steps[-1].token_end if steps else 0)
    return tuple(s.index for s in steps[1:] if s.token_start < limit)


def get_strategy(name: str) -> Strategy:
    """The registered strategy ``name``; ValueError listing the valid names otherwise."""
    try:
        return STRATEGIES[name]
    except KeyError:
        valid = ", ".join(sorted(STRATEGIES))
        raise ValueError(f"unknown breakpoint strategy {name!r}; valid: {valid}") from None


def _needs_candidates(fn: Strategy) -> Strategy:
    """Cut at step 0 when there is no candidate step, else ask ``fn``."""

    def wrapped(inp: StrategyInput) -> tuple[int, str]:
        return fn(inp) if inp.candidates else (0, "no_candidates")

    return wrapped


@_needs_candidates
def _entropy_surge(inp: StrategyInput) -> tuple[int, str]:
    rising = [k for k in inp.candidates if (inp.surges[k] or 0.0) > inp.cfg.min_surge]
    if rising:
        return _argmax(rising, lambda k: inp.surges[k] or 0.0), "max_surge"
    return _max_entropy(inp)[0], "fallback_max_entropy"


@_needs_candidates
def _max_entropy(inp: StrategyInput) -> tuple[int, str]:
    return _argmax(inp.candidates, lambda k: inp.step_entropies[k]), "max_entropy"


@_needs_candidates
def _random(inp: StrategyInput) -> tuple[int, str]:
    return random.Random(inp.seed).choice(inp.candidates), "random"


def _start(inp: StrategyInput) -> tuple[int, str]:
    return 0, "start"


def _argmax(indices: Sequence[int], value: Callable[[int], float]) -> int:
    """The index with the largest value; the earliest one on ties (``max`` keeps the first)."""
    return max(indices, key=value)


STRATEGIES: dict[str, Strategy] = {
    "entropy-surge": _entropy_surge,
    "max-entropy": _max_entropy,
    "random": _random,
    "start": _start,
}
