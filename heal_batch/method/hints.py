"""Hindsight hints: build them, inject them at a cut, strip them again, catch leaks.

Inputs are plain strings: the reference answer, the trajectory prefix kept before the breakpoint,
the teacher's continuation. Outputs are strings (or the leaked phrase).

Round trip (the training text never contains the hint)::

    >>> hint = build_hint("42")
    >>> stitched = hint_prefill("Step one.\\n\\n", hint) + "So the answer is 42."
    >>> strip_hint(stitched, hint)
    'Step one.\\n\\nSo the answer is 42.'

Templates use ``{answer}`` (and ``{problem}`` for the answer-guided prompt); other braces are left
alone, so LaTeX such as ``\\frac{1}{2}`` is safe in templates and in answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

# The hint ends by restating the answer format: without that, a small teacher that was shown
# few-shot examples drops \boxed{} after the interruption (~90% of SmolLM2 continuations).
DEFAULT_HINT_TEMPLATE = (
    "\n\nWait. (Hindsight: the correct final answer is {answer}.) Let me re-check my reasoning "
    "and find a valid derivation that leads to {answer}, then give the final answer in "
    "\\boxed{}.\n\n"
)
DEFAULT_ANSWER_GUIDED_TEMPLATE = (
    "{problem}\n\n(For reference, the correct final answer is {answer}. Solve the problem step "
    "by step on your own, as if you had not been told the answer, and put the final answer in "
    "\\boxed{}.)"
)
# Phrases that show a continuation talks about the hint instead of solving the problem: the
# student never sees a hint, so such text would teach it to expect one.
DEFAULT_LEAK_PHRASES: tuple[str, ...] = (
    "hint",
    "hints",
    "hinted",
    "hindsight",
    "given answer",
    "answer given",
    "given the answer",
    "provided answer",
    "answer provided",
    "reference answer",
    "expected answer",
    "we are told",
    "i was told",
    "i am told",
    "i'm told",
    "told the answer",
    "the correct final answer is",
    "valid derivation that leads to",
    "for reference",
)
_PLACEHOLDER = re.compile(r"\{(answer|problem)\}")


def build_hint(answer: str, template: str = DEFAULT_HINT_TEMPLATE) -> str:
    """The inline hint text for ``answer``. Raises ValueError if ``template`` lacks ``{answer}``."""
    _require_placeholders(template, ("answer",), "hint_template")
    return _fill(template, {"answer": answer})


def answer_guided_prompt(
    problem: str, answer: str, template: str = DEFAULT_ANSWER_GUIDED_TEMPLATE
) -> str:
    """User-prompt text for an answer-guided sample (PACE stage II): the hint comes first-hand.

    The training sample pairs the ORIGINAL problem with the continuation; this prompt is only
    what the teacher sees.
    """
    _require_placeholders(template, ("problem", "answer"), "answer_guided_template")
    return _fill(template, {"problem": problem, "answer": answer})


def hint_prefill(prefix: str, hint: str) -> str:
    """The text the teacher continues from: ``prefix`` (trailing whitespace dropped) + ``hint``.

    An empty or blank prefix (cut at token 0) gives the hint without its leading whitespace.
    """
    body = prefix.rstrip()
    return body + hint if body else hint.lstrip()


def strip_hint(stitched: str, hint: str) -> str:
    """Remove the injected hint from ``stitched`` (= prefill + continuation) and join the seam.

    The first occurrence of the hint's non-whitespace core is removed: the prefix is the teacher's
    own text from before the hint existed. If the hint has surrounding whitespace, the whitespace
    on both sides of the seam collapses to the hint's leading (else trailing) whitespace, or to
    nothing when one side is empty; a hint without surrounding whitespace is removed exactly.
    Contract: ``strip_hint(hint_prefill(p, h) + c, h) == p.rstrip() + sep + c.lstrip()``.
    Raises ValueError when the hint is not in ``stitched``.
    """
    return strip_hint_with_cut(stitched, hint)[0]


def strip_hint_with_cut(stitched: str, hint: str) -> tuple[str, int]:
    """``strip_hint`` plus the char index in the result where the text after the hint begins.

    PURE scores the steps from there on: ``pure.first_step_after(steps, cut)``.
    """
    core = hint.strip()
    if not core:
        raise ValueError("hint is empty or whitespace only")
    at = stitched.find(core)
    if at < 0:
        raise ValueError(f"hint {core[:60]!r} not found in the stitched text")
    left, right = stitched[:at], stitched[at + len(core) :]
    sep = _seam(hint)
    if sep:
        left, right = left.rstrip(), right.lstrip()
        if not (left and right):
            sep = ""
    return left + sep + right, len(left) + len(sep)


def find_leak(continuation: str, phrases: Sequence[str] = DEFAULT_LEAK_PHRASES) -> str | None:
    """The configured phrase that occurs first in ``continuation``, or None.

    Matching is case-insensitive, on word boundaries ("hint" matches "Hint:" but not
    "thinking" or "hinting"), and any whitespace run in a phrase matches any
    whitespace run in the text.
    """
    best: tuple[int, int, str] | None = None
    for order, phrase in enumerate(phrases):
        match = _phrase_regex(phrase).search(continuation)
        if match and (best is None or (match.start(), order) < best[:2]):
            best = (match.start(), order, phrase)
    return best[2] if best else None


def _phrase_regex(phrase: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in phrase.split()]
    if not words:
        raise ValueError("leak phrases must not be empty")
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def _seam(hint: str) -> str:
    lead = hint[: len(hint) - len(hint.lstrip())]
    trail = hint[len(hint.rstrip()) :]
    return lead or trail


def _fill(template: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def _require_placeholders(template: str, names: Sequence[str], key: str) -> None:
    missing = [n for n in names if "{" + n + "}" not in template]
    if missing:
        found = ", ".join("{" + n + "}" for n in missing)
        raise ValueError(f"{key}: the template must contain {found}; got {template!r}")
