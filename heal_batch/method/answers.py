"""Locate the final answer in text and in tokens: the contents of the last ``\\boxed{...}``, or,
when there is none, what follows the last GSM8K-style ``#### `` marker on its line.

Input: the completion text (and its per-token char offsets). Output: a char span or a token span
``[start, end)`` of the answer, or None when there is no complete ``\\boxed{}`` (or ``####``
line) with content.
PURE scores the answer's tokens with it; grading lives elsewhere (``heal_batch.method.grading``).

Example::

    >>> text = "so x = 2. \\\\boxed{\\\\frac{1}{2}}"
    >>> start, end = last_boxed_char_span(text)
    >>> text[start:end]
    '\\\\frac{1}{2}'
"""

from __future__ import annotations

import re
from collections.abc import Sequence

BOXED = "\\boxed"
GSM8K_MARKER = re.compile(r"####[ \t]*([^\n]*?)[ \t]*(?:\n|$)")


def last_boxed_char_span(text: str) -> tuple[int, int] | None:
    """Char span of the contents of the LAST ``\\boxed{...}`` (braces balanced, whitespace trimmed).

    None when there is no ``\\boxed{``, when the last one is never closed (a truncated answer does
    not count) or when its contents are blank.
    """
    at = text.rfind(BOXED + "{")
    if at < 0:
        return None
    open_at = at + len(BOXED)
    close_at = _matching_brace(text, open_at)
    if close_at is None:
        return None
    start, end = open_at + 1, close_at
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def final_answer_char_span(text: str) -> tuple[int, int] | None:
    """The last boxed answer's char span, else the text after the last ``####`` on its line."""
    boxed = last_boxed_char_span(text)
    if boxed is not None or "####" not in text:
        return boxed
    markers = list(GSM8K_MARKER.finditer(text))
    if not markers or markers[-1].start(1) == markers[-1].end(1):
        return None
    return markers[-1].start(1), markers[-1].end(1)


def final_answer_span(text: str, offsets: Sequence[tuple[int, int]]) -> tuple[int, int] | None:
    """Token span ``[first, last + 1)`` of the tokens overlapping the final answer.

    ``offsets`` are per-token ``(char_start, char_end)`` relative to ``text``; zero-width tokens
    never count. None when there is no final answer or no token overlaps it.
    """
    chars = final_answer_char_span(text)
    if chars is None:
        return None
    start, end = chars
    hits = [i for i, (a, b) in enumerate(offsets) if a < b and a < end and b > start]
    return (hits[0], hits[-1] + 1) if hits else None


def _matching_brace(text: str, open_at: int) -> int | None:
    depth = 0
    i = open_at
    while i < len(text):
        ch = text[i]
        if ch == "\\":  # an escaped brace such as \{ does not open or close a group
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None
