"""Split a reasoning trajectory into steps on blank lines (or, optionally, on every line break).

Input: the completion text and, per token, its ``(char_start, char_end)`` offsets relative to that
text (a fast tokenizer's ``offset_mapping`` for the completion alone), or a list of decoded token
strings. Output: ``list[Step]`` whose token ranges tile ``[0, n_tokens)`` and whose char ranges
tile ``[0, len(text))``, each exactly once, in order.

Rules:
- With ``delimiter="blank_line"`` (the paper's ``\\n\\n``) a step ends after a run of blank lines
  (``"\\n\\n"``, ``"\\n  \\n"``, ...); with ``delimiter="line"`` after any line break, for
  teachers that write one step per line (small instruct models do). The delimiter belongs to the
  step it closes, so ``text[:step.char_start]`` is "everything before this step".
- A token belongs to the step in which it starts. Zero-width tokens (special tokens with offset
  ``(0, 0)``) and tokens whose offsets go backwards attach to the step of the token before them.
- Steps shorter than ``min_step_tokens`` are merged into the next step; a short last step is merged
  into the previous one. A trajectory shorter than ``min_step_tokens`` is one step.

Example::

    >>> text, offsets = offsets_from_tokens(["a", " b", ".\\n\\n", "c", " d"])
    >>> [(s.token_start, s.token_end) for s in split_steps(text, offsets, min_step_tokens=1)]
    [(0, 3), (3, 5)]
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

BLANK_LINES = re.compile(r"\n(?:[ \t]*\n)+")
LINE_BREAKS = re.compile(r"\n(?:[ \t]*\n)*")
DELIMITERS: dict[str, re.Pattern[str]] = {"blank_line": BLANK_LINES, "line": LINE_BREAKS}
DEFAULT_DELIMITER = "blank_line"
DEFAULT_MIN_STEP_TOKENS = 8


@dataclass(frozen=True)
class Step:
    """One reasoning step: tokens ``[token_start, token_end)``, text ``[char_start, char_end)``."""

    index: int
    token_start: int
    token_end: int
    char_start: int
    char_end: int

    @property
    def n_tokens(self) -> int:
        return self.token_end - self.token_start


def split_steps(
    text: str,
    offsets: Sequence[tuple[int, int]],
    *,
    min_step_tokens: int = DEFAULT_MIN_STEP_TOKENS,
    delimiter: str = DEFAULT_DELIMITER,
) -> list[Step]:
    """Split ``text`` (tokenised as ``offsets``) into steps; ``[]`` when there are no tokens.

    Raises ValueError when an offset lies outside ``[0, len(text)]``, ``min_step_tokens < 1`` or
    ``delimiter`` is not one of ``DELIMITERS``.
    """
    if min_step_tokens < 1:
        raise ValueError(f"min_step_tokens must be >= 1, got {min_step_tokens}")
    pattern = delimiter_pattern(delimiter)
    if not offsets:
        return []
    starts = _token_positions(text, offsets)
    raw = _raw_boundaries(text, starts, pattern)
    merged = _merge_short(raw, len(starts), min_step_tokens)
    return _build_steps(merged, starts, len(text))


def split_token_strings(
    tokens: Sequence[str],
    *,
    min_step_tokens: int = DEFAULT_MIN_STEP_TOKENS,
    delimiter: str = DEFAULT_DELIMITER,
) -> tuple[str, list[Step]]:
    """Split decoded token strings; returns ``("".join(tokens), steps)``."""
    text, offsets = offsets_from_tokens(tokens)
    return text, split_steps(text, offsets, min_step_tokens=min_step_tokens, delimiter=delimiter)


def delimiter_pattern(name: str) -> re.Pattern[str]:
    """The regex of step delimiter ``name``; ValueError listing the valid names otherwise."""
    try:
        return DELIMITERS[name]
    except KeyError:
        valid = ", ".join(sorted(DELIMITERS))
        raise ValueError(f"unknown step delimiter {name!r}; valid: {valid}") from None


def offsets_from_tokens(tokens: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """Concatenate decoded token strings; return the text and each token's char offsets."""
    offsets: list[tuple[int, int]] = []
    pos = 0
    for tok in tokens:
        offsets.append((pos, pos + len(tok)))
        pos += len(tok)
    return "".join(tokens), offsets


def step_means(values: Sequence[float], steps: Sequence[Step]) -> list[float]:
    """Mean of per-token ``values`` over each step (step entropy = mean token entropy).

    Raises ValueError when ``len(values)`` differs from the number of tokens the steps cover.
    """
    check_aligned(values, steps, what="values")
    return [math.fsum(values[s.token_start : s.token_end]) / s.n_tokens for s in steps]


def check_aligned(values: Sequence[float], steps: Sequence[Step], *, what: str) -> None:
    """Raise ValueError unless ``values`` has exactly one entry per token covered by ``steps``."""
    n_tokens = steps[-1].token_end if steps else 0
    if len(values) != n_tokens:
        raise ValueError(
            f"{what} has {len(values)} entries but the steps cover {n_tokens} tokens; "
            "pass one value per completion token, aligned with the offsets used for splitting"
        )


def _token_positions(text: str, offsets: Sequence[tuple[int, int]]) -> list[int]:
    """Char position that decides each token's step: its start, never before the previous one."""
    positions: list[int] = []
    prev = 0
    for i, (start, end) in enumerate(offsets):
        if not (0 <= start <= end <= len(text)):
            raise ValueError(
                f"token {i} has offsets ({start}, {end}) outside the text (length {len(text)}); "
                "offsets must be relative to the completion text"
            )
        # zero-width special tokens report (0, 0): keep them with the token before
        pos = prev if start == end or start < prev else start
        positions.append(pos)
        prev = pos
    return positions


def _raw_boundaries(text: str, positions: Sequence[int], pattern: re.Pattern[str]) -> list[int]:
    """Token indices at which a new step starts (ascending, excluding 0 and n_tokens)."""
    cuts: list[int] = []
    tok = 0
    n = len(positions)
    for match in pattern.finditer(text):
        while tok < n and positions[tok] < match.end():
            tok += 1
        if 0 < tok < n and (not cuts or cuts[-1] != tok):
            cuts.append(tok)
    return cuts


def _merge_short(cuts: Sequence[int], n_tokens: int, min_tokens: int) -> list[int]:
    """Drop cuts so every step has >= min_tokens tokens (short steps join the next one)."""
    kept: list[int] = []
    start = 0
    for cut in cuts:
        if cut - start >= min_tokens:
            kept.append(cut)
            start = cut
    # the tail after the last kept cut is short: it joins the step before it
    if kept and n_tokens - kept[-1] < min_tokens:
        kept.pop()
    return kept


def _build_steps(cuts: Sequence[int], positions: Sequence[int], text_len: int) -> list[Step]:
    token_bounds = [0, *cuts, len(positions)]
    char_bounds = [0, *(positions[c] for c in cuts), text_len]
    return [
        Step(i, token_bounds[i], token_bounds[i + 1], char_bounds[i], char_bounds[i + 1])
        for i in range(len(token_bounds) - 1)
    ]
