"""Where the final answer is: the one rule that grading and PURE scoring share.

Input: the completion text (and, for tokens, its per-token char offsets). Output: the span
``[start, end)`` of the final answer, or None when none is stated. The rule:

- a box is ``\\boxed`` or ``\\fbox``, then optional whitespace, then a brace group: braces nest and
  an escaped brace (``\\{``, ``\\}``) neither opens nor closes one. TeX's bare argument counts too:
  ``\\boxed 5`` (spaces, then a run of characters other than whitespace and ``$.,;``);
- the last complete box wins: a box that is never closed (a truncated answer) is skipped and an
  earlier complete one counts;
- with no box, the answer is what follows the last GSM8K-style ``####`` on its line; a box always
  wins over ``####``, wherever that stands (``#### Check`` after a boxed answer is a heading);
- the answer is trimmed of whitespace. A stated but blank answer (``\\boxed{}``) is an empty span
  (start == end): grading calls it unparseable, and it has no tokens to score.

``style``: "boxed" reads only boxes, "gsm8k" only ``####``, "auto" a box, else ``####``.
Grading (``heal_batch.method.grading``) reads the answer's text from this span; ``eval/utils.py``
keeps a copy of the rule because lm-eval imports it without heal_batch (a parity test holds the two
together).

Example::

    >>> text = "so x = \\\\fbox {\\\\frac{1}{2}} \\\\boxed{3"
    >>> found = final_answer_char_span(text)
    >>> text[found.start : found.end], found.marker
    ('\\\\frac{1}{2}', 'boxed')
    >>> final_answer_char_span("3 + 4 = 7\\n#### 7 \\n")
    AnswerSpan(start=15, end=16, marker='####')
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal, NamedTuple

Style = Literal["boxed", "gsm8k", "auto"]
STYLES = ("boxed", "gsm8k", "auto")

_BOX = re.compile(r"\\(?:boxed|fbox)\b")
_BARE = re.compile(r"[ \t]+([^\s$.,;]+)")
_GSM8K = re.compile(r"####[ \t]*([^\n]*)")


class AnswerSpan(NamedTuple):
    """Char span ``[start, end)`` of the final answer; ``marker`` is "boxed" or "####"."""

    start: int
    end: int
    marker: str


def final_answer_char_span(text: str, style: Style = "auto") -> AnswerSpan | None:
    """The final answer's char span under the module's rule, or None when none is stated.

    Raises ValueError for a ``style`` other than "boxed", "gsm8k" or "auto".
    """
    if style not in STYLES:
        raise ValueError(f"style {style!r} is not one of 'boxed', 'gsm8k', 'auto'")
    if style != "gsm8k":
        for match in reversed(list(_BOX.finditer(text))):
            content = _box_content(text, match.end())
            if content is not None:
                return _trimmed(text, *content, "boxed")
        if style == "boxed":
            return None
    matches = list(_GSM8K.finditer(text))
    last = matches[-1] if matches else None
    return None if last is None else _trimmed(text, last.start(1), last.end(1), "####")


def final_answer_span(
    text: str, offsets: Sequence[tuple[int, int]], style: Style = "auto"
) -> tuple[int, int] | None:
    """Token span ``[first, last + 1)`` of the tokens overlapping the final answer.

    ``offsets`` are per-token ``(char_start, char_end)`` relative to ``text``; zero-width tokens
    never count. None when there is no final answer, it is blank, or no token overlaps it.
    """
    found = final_answer_char_span(text, style)
    if found is None or found.start == found.end:
        return None
    start, end = found.start, found.end
    hits = [i for i, (a, b) in enumerate(offsets) if a < b and a < end and b > start]
    return (hits[0], hits[-1] + 1) if hits else None


def _box_content(text: str, after: int) -> tuple[int, int] | None:
    """Untrimmed span of the argument of the box command ending at ``after``; None if unclosed."""
    i = after
    while i < len(text) and text[i].isspace():
        i += 1
    if i < len(text) and text[i] == "{":
        close = _matching_brace(text, i)
        return None if close is None else (i + 1, close)
    bare = _BARE.match(text, after)
    return bare.span(1) if bare else None


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


def _trimmed(text: str, start: int, end: int, marker: str) -> AnswerSpan:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return AnswerSpan(start, end, marker)
