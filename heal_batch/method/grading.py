"""Answer extraction and grading with math-verify.

Inputs -> outputs: model output text + reference answer -> Grade(correct, reason, extracted).

An answer counts only when the model states it: the last complete \\boxed{...} (or \\fbox{...}),
or for GSM8K-style output the last "#### N" line; where it stands is decided by
``heal_batch.method.answers.final_answer_char_span``, the rule PURE scoring uses too. The last
number of loose text is never taken as the answer: looping or truncated text would otherwise score
by chance (design.md section 9). A "#### N" answer loses "$", thousands separators and a final ".".
The extracted string and the reference are compared by math-verify (LaTeX and plain expressions,
so \\frac{1}{2} equals 0.5 and 1,000 equals 1000).

Reasons: "correct", "wrong_answer", "no_answer" (no box or marker), "unparseable" (an empty box,
or math-verify could read neither side), never an exception.

Example:
    >>> grade("So the total is \\\\boxed{\\\\frac{1}{2}}.", "0.5")
    Grade(correct=True, reason='correct', extracted='\\\\frac{1}{2}')
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from functools import lru_cache

from heal_batch.method.answers import Style, final_answer_char_span

# Bump when extraction or comparison rules change meaning. 2: the answers.py rule (escaped braces,
# any whitespace before a box's brace).
RULES_VERSION = 2

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
# 4.5e33: LaTeX would read e as a symbol, so it becomes 4.5 \times 10^{33}.
_E_NOTATION = re.compile(r"^([-+]?\d+(?:\.\d+)?)[eE]([-+]?\d+)$")
# A number followed only by a unit ("18 dollars", "18\text{ apples}"): the unit is dropped.
_NUMBER_UNIT = re.compile(
    r"^\\?\$?\s*([-+]?\d+(?:\.\d+)?)"
    r"(?:\s*\\(?:text|mbox|mathrm)\{[^{}]*\}|\s+[A-Za-z]{2,}[A-Za-z ]*)\.?$"
)


@dataclass(frozen=True)
class Grade:
    """correct: the extracted answer equals the reference. reason: see the module docstring."""

    correct: bool
    reason: str
    extracted: str | None = None


def verifier_version() -> str:
    """Name and version of what grades, for manifests and records."""
    from importlib.metadata import version

    return f"heal_batch.method.grading/{RULES_VERSION} math-verify=={version('math-verify')}"


def extract_answer(text: str, style: Style = "auto") -> str | None:
    """The stated final answer, or None. style: "boxed", "gsm8k" or "auto" (boxed, else ####).

    "" when the answer is stated but blank (``\\boxed{}``). Raises ValueError for another style.
    """
    if not isinstance(text, str):
        return None
    found = final_answer_char_span(text, style)
    if found is None:
        return None
    answer = text[found.start : found.end]
    if found.marker == "boxed":
        return answer
    answer = answer.rstrip(".").strip()
    return _THOUSANDS.sub("", answer.replace("$", "")).strip()


def last_boxed(text: str) -> str | None:
    """Content of the last complete \\boxed{...}/\\fbox{...} (nested braces allowed), else None."""
    return extract_answer(text, "boxed")


def grade(text: str, reference: str, style: Style = "auto") -> Grade:
    """Grade one output against its reference answer (see the module docstring). Never raises."""
    try:
        extracted = extract_answer(text, style)
    except Exception:  # a bad style is the caller's bug, but grading must not stop a shard
        logging.getLogger(__name__).exception("answer extraction failed")
        return Grade(False, "unparseable")
    if extracted is None:
        return Grade(False, "no_answer")
    if not extracted:
        return Grade(False, "unparseable", extracted)
    if _plain(extracted) == _plain(str(reference)):
        return Grade(True, "correct", extracted)
    try:
        return _verify(extracted, str(reference))
    except Exception:  # math-verify and sympy can fail in surprising ways on odd text
        logging.getLogger(__name__).debug("math-verify failed", exc_info=True)
        return Grade(False, "unparseable", extracted)


def _verify(extracted: str, reference: str) -> Grade:
    from math_verify import verify

    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    gold = _parse(reference, timeout)
    pred = _parse(_THOUSANDS.sub("", extracted), timeout)
    if not gold or not pred:
        return Grade(False, "unparseable", extracted)
    ok = verify(list(gold), list(pred), timeout_seconds=timeout)
    return Grade(bool(ok), "correct" if ok else "wrong_answer", extracted)


@lru_cache(maxsize=4096)
def _parse(expr: str, timeout: int | None) -> tuple:
    """math-verify's LaTeX reading of a bare answer, plus its string form as a last resort."""
    from math_verify import parse

    expr = _E_NOTATION.sub(r"\1 \\times 10^{\2}", _strip_units(expr.strip()))
    readings = [r for r in parse(f"${expr}$", parsing_timeout=timeout) if not isinstance(r, str)]
    return (*readings, expr)


def _strip_units(answer: str) -> str:
    """'18 dollars', '18\\text{ apples}' -> '18': a number followed only by a unit word."""
    match = _NUMBER_UNIT.match(answer)
    return match.group(1) if match else answer


def _plain(s: str) -> str:
    s = re.sub(r"\\text\{([^{}]*)\}", r"\1", s)
    return re.sub(r"\s+|\$|\\[,;!]", "", s).rstrip(".").lower()
