"""Read a trajectory record (generate's output) into the inputs of the GEAR/PURE functions.

Input: one trajectory record (``completion``, ``offsets`` = char start of each token,
``entropies`` = f16-encoded floats). Output: token spans, steps, entropies and the GEAR breakpoint.
Shared by ``repair`` (where to cut), ``score`` (steps of scored text) and ``plots`` (the picture).

    steps, bp = breakpoint_of(record, GearConfig())
    record["completion"][:bp.char_index]          # the prefix GEAR keeps
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from heal_batch.method.gear import Breakpoint, GearConfig, find_breakpoint
from heal_batch.method.seeds import stable_seed
from heal_batch.method.steps import DEFAULT_DELIMITER, Step, split_steps


def token_spans(starts: Sequence[int], text_len: int) -> list[tuple[int, int]]:
    """Per-token ``(start, end)`` from start offsets: a token ends where the next one starts.

    Backends and the scorer report only starts; ``steps.split_steps`` wants spans.
    """
    ends = [*starts[1:], text_len]
    return [(int(s), max(int(s), int(e))) for s, e in zip(starts, ends, strict=False)]


def steps_of(
    text: str, starts: Sequence[int], min_step_tokens: int, delimiter: str = DEFAULT_DELIMITER
) -> list[Step]:
    """The steps of ``text`` tokenised with token start offsets ``starts``."""
    spans = token_spans(starts, len(text))
    return split_steps(text, spans, min_step_tokens=min_step_tokens, delimiter=delimiter)


def stored_entropies(record: dict[str, Any]) -> list[float]:
    """The per-token entropies stored with a trajectory (exact or a top-K estimate)."""
    from heal_batch.records import decode_floats

    return decode_floats(record["entropies"])


def breakpoint_seed(base_seed: int, trajectory_id: str) -> int:
    """The seed the ``random`` strategy uses for one trajectory (stable across runs)."""
    return stable_seed(base_seed, "gear", trajectory_id)


def breakpoint_of(
    record: dict[str, Any],
    cfg: GearConfig,
    entropies: Sequence[float] | None = None,
    seed: int = 0,
) -> tuple[list[Step], Breakpoint]:
    """Steps and GEAR breakpoint of one trajectory; ``entropies`` default to the stored ones."""
    ents = stored_entropies(record) if entropies is None else list(entropies)
    steps = gear_steps(record, cfg)
    return steps, find_breakpoint(ents, steps, cfg, seed=breakpoint_seed(seed, record["id"]))


def gear_steps(record: dict[str, Any], cfg: GearConfig) -> list[Step]:
    """A trajectory's steps as GEAR splits them (``cfg``'s delimiter and minimum step length)."""
    return steps_of(
        record["completion"], record["offsets"], cfg.min_step_tokens, cfg.step_delimiter
    )


def breakpoint_dict(bp: Breakpoint, n_steps: int, entropy_method: str) -> dict[str, Any]:
    """The breakpoint as stored in candidate records (lineage)."""
    return {
        "step_index": bp.step_index,
        "token_index": bp.token_index,
        "char_index": bp.char_index,
        "strategy": bp.strategy,
        "reason": bp.reason,
        "surge": bp.surge,
        "n_steps": n_steps,
        "entropy_method": entropy_method,
    }
