"""Answer extraction and grading with math-verify.

Inputs -> outputs: model output text + reference answer -> Grade(correct, reason, extracted).

An answer counts only when the model states it: the last complete \\boxed{...} (or \\fbox{...}),
or for GSM8K-style output the last "#### N" line. The last number of loose text is never taken as
the answer: looping or truncated text would otherwise score by chance (design.md section 9).
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
from typing import Literal

Style = Literal["boxed", "gsm8k", "auto"]
RULES_VERSION = 1  # bump when extraction or comparison rules change meaning

_BOX = re.compile(r"\\(?:boxed|fbox)\b")
_GSM8K = re.compile(r"####[ \t]*([^\n]*)")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
# 4.5e33: LaTeX would read e as a symbol, so it becomes 4.5 \times 10^{33}.
_E_NOTATION = re.compile(r"^([-+]?\d+(?:\.\d+)?)[eE]([-+]?\d+)$")
# A number followed only by a unit ("18 dollars", "18\text{ apples}"): the unit is dropped.
_NUMBER_UNIT = re.compile(
    r"^\\?\$?\s*([-+]?\d+(?:\.\d+)?)(?:\s*\\(?:text|mbox|mathrm)\{[^{}]*\}|\s+[A-Za-z]{2,}[A-Za-z ]*)\.?$"
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
    """The stated final answer, or None. style: "boxed", "gsm8k" or "auto" (boxed, else ####)."""
    if not isinstance(text, str):
        return None
    if style not in ("boxed", "gsm8k", "auto"):
        raise ValueError(f"style {style!r} is not one of 'boxed', 'gsm8k', 'auto'")
    if style in ("boxed", "auto"):
        boxed = last_boxed(text)
        if boxed is not None or style == "boxed":
            return boxed
    marks = _GSM8K.findall(text)
    if not marks:
        return None
    answer = marks[-1].strip().rstrip(".").strip()
    return _THOUSANDS.sub("", answer.replace("$", "")).strip()


def last_boxed(text: str) -> str | None:
    """Content of the last complete \\boxed{...}/\\fbox{...} (nested braces allowed), else None."""
    for match in reversed(list(_BOX.finditer(text))):
        content = _braced_after(text, match.end())
        if content is not None:
            return content.strip()
    return None


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


def _braced_after(text: str, i: int) -> str | None:
    """Content of the {...} group starting at text[i] (after spaces); None if unbalanced.

    Also accepts "\\boxed 5" (a single bare token), as TeX does.
    """
    while i < len(text) and text[i] in " \t":
        i += 1
    if i >= len(text):
        return None
    if text[i] != "{":
        bare = re.match(r"[^\s$.,;]+", text[i:])
        return bare.group(0) if bare and text[i - 1] in " \t" else None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None
