"""An oracle for the built-in arithmetic problems: did a repair derive its answer, or jump to it?

PURE guesses from perplexities whether a repaired trajectory reasons or takes a shortcut. On the
built-in problems (``heal_batch.data.builtin``) the truth can be checked, so PURE can be measured.

Input: the text after the cut (a repair's ``text[cut_char:]``; an answer-guided sample's whole
text), the reference answer and, optionally, the problem text. Output: one label.

- A **step** is an equation ``a op b [op c ...] = r`` with numbers (digits, an optional decimal
  part, an optional leading ``$``) and ``op`` one of ``+ - * x × / ÷``, found anywhere in the
  text before its final answer; ``*``, ``x``, ``/`` bind before ``+`` and ``-``. A step is
  **correct** when the left side evaluates exactly (fractions) to ``r``.
- A number is **grounded** when it is in the problem, in the problem's own computation
  (``builtin_results``: so a step may use a result the prefix already worked out), or the result
  of an earlier step of the text. Without a problem, grounding is not checked.

Labels, first match wins:

1. ``no_answer``: no final answer (``answers.final_answer_char_span``: the last box, else ``####``).
2. ``wrong_answer``: the final answer is not the reference (numerically).
3. ``wrong_step``: some step is not correct (``8 + 8 = 17``), whatever the answer.
4. ``ungrounded``: some step uses a number that is not grounded (``76 - 0 = 76``).
5. ``derived``: at least one step, and the last step's result is the reference answer.
6. ``shortcut``: the answer is stated without such a derivation (no steps, or steps whose last
   result is not the answer).

``derived`` is the positive class PURE is scored against (``pure_vs_oracle``); every other label
counts as not derived.

    >>> oracle_label("8 + 8 = 16, The answer is \\\\boxed{16}.", "16", "What is 8 + 8?")
    'derived'
    >>> oracle_label("The answer is \\\\boxed{76}.", "76")
    'shortcut'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from fractions import Fraction

from heal_batch.method.answers import final_answer_char_span

DERIVED = "derived"
SHORTCUT = "shortcut"
WRONG_STEP = "wrong_step"
UNGROUNDED = "ungrounded"
WRONG_ANSWER = "wrong_answer"
NO_ANSWER = "no_answer"
LABELS = (DERIVED, SHORTCUT, WRONG_STEP, UNGROUNDED, WRONG_ANSWER, NO_ANSWER)
BUILTIN_PREFIX = "builtin/"

_NUM = r"\$?\d+(?:\.\d+)?"
_OP = r"[+\-*/x×÷]"
_STEP = re.compile(rf"(?<![\w.$]){_NUM}(?:\s*{_OP}\s*{_NUM})+\s*=\s*{_NUM}(?![\d])")
_TOKEN = re.compile(rf"{_NUM}|{_OP}")
_PRODUCT = {"*": "*", "x": "*", "×": "*", "/": "/", "÷": "/"}
_L3 = re.compile(
    r"buys (\d+) \w+ at (\d+) dollars each and (\d+) \w+ at (\d+) dollars each.*?"
    r"a (\d+) dollar bill",
    re.S,
)
_L12 = re.compile(r"^What is (\d+(?:\s*[+-]\s*\d+)+)\?$")


def oracle_label(after_cut: str, reference: str, problem: str | None = None) -> str:
    """The label of ``after_cut`` (see the module docstring); ``problem`` turns grounding on."""
    found = final_answer_char_span(after_cut)
    if found is None or found.start == found.end:
        return NO_ANSWER
    answer, ref = _number(after_cut[found.start : found.end]), _number(reference)
    if answer is None or answer != ref:
        return WRONG_ANSWER
    steps = [_parse_step(m.group()) for m in _STEP.finditer(after_cut, 0, found.start)]
    if any(_evaluate(operands, ops) != result for operands, ops, result in steps):
        return WRONG_STEP
    if problem is not None:
        known = {*map(Fraction, re.findall(r"\d+", problem)), *builtin_results(problem)}
        for operands, _, result in steps:
            if any(x not in known for x in operands):
                return UNGROUNDED
            known.add(result)
    return DERIVED if steps and steps[-1][2] == answer else SHORTCUT


def is_builtin(source: str | None) -> bool:
    """Whether a problem's ``source`` is one of the built-in generators (``builtin/...``)."""
    return bool(source) and source.startswith(BUILTIN_PREFIX)


def builtin_results(problem: str) -> list[Fraction]:
    """The intermediate and final results of a built-in problem's computation, in order; [] for a
    text that is not a built-in problem. Level 1/2: the running value of ``What is a + b - c?``;
    level 3: n1*p1, n2*p2, their sum, bill - sum.

    >>> [int(x) for x in builtin_results("What is 4 + 5 - 3?")]
    [9, 6]
    """
    if m := _L12.match(problem.strip()):
        tokens = _TOKEN.findall(m.group(1))
        values, total = [], Fraction(tokens[0])
        for op, num in zip(tokens[1::2], tokens[2::2], strict=True):
            total = total + Fraction(num) if op == "+" else total - Fraction(num)
            values.append(total)
        return values
    if m := _L3.search(problem):
        n1, p1, n2, p2, bill = map(Fraction, m.groups())
        return [n1 * p1, n2 * p2, n1 * p1 + n2 * p2, bill - n1 * p1 - n2 * p2]
    return []


def pure_vs_oracle(pairs: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Counters of PURE's decisions against the oracle; ``pairs``: (PURE reason, oracle label)
    per candidate, reason ``kept`` or the rule that dropped it.

    Keys: ``oracle_candidates``; ``oracle_<label>`` per label; ``oracle_kept`` and
    ``oracle_kept_derived``; per drop rule ``oracle_rule_<reason>`` and
    ``oracle_rule_<reason>_derived`` (derived candidates that rule dropped). Precision =
    kept_derived / kept, recall = kept_derived / derived (``precision_recall``).

    >>> c = pure_vs_oracle([("kept", "derived"), ("kept", "shortcut"), ("top_lambda", "derived")])
    >>> c["oracle_kept_derived"], c["oracle_rule_top_lambda_derived"], precision_recall(c)
    (1, 1, (0.5, 0.5))
    """
    counts: dict[str, int] = {"oracle_candidates": 0, "oracle_kept": 0, "oracle_kept_derived": 0}
    for reason, label in pairs:
        derived = int(label == DERIVED)
        counts["oracle_candidates"] += 1
        counts[f"oracle_{label}"] = counts.get(f"oracle_{label}", 0) + 1
        key = "oracle_kept" if reason == "kept" else "oracle_rule_" + _key(reason)
        counts[key] = counts.get(key, 0) + 1
        counts[key + "_derived"] = counts.get(key + "_derived", 0) + derived
    return counts


def precision_recall(counters: dict[str, int]) -> tuple[float | None, float | None]:
    """(precision, recall) of PURE's keep against ``derived`` from ``pure_vs_oracle``'s counters;
    None where the denominator is 0."""
    hit, kept = counters.get("oracle_kept_derived", 0), counters.get("oracle_kept", 0)
    derived = counters.get(f"oracle_{DERIVED}", 0)
    return (hit / kept if kept else None, hit / derived if derived else None)


def _key(reason: str) -> str:
    """A drop reason as a counter key part (``[a-z0-9_]``: ``q97.5`` becomes ``q97_5``)."""
    return re.sub(r"[^a-z0-9_]", "_", reason.lower())


def _number(text: str) -> Fraction | None:
    """The number a final answer or reference states (``$``, commas, spaces ignored), or None."""
    cleaned = text.replace(",", "").replace("$", "").replace(" ", "").rstrip(".")
    try:
        return Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def _parse_step(text: str) -> tuple[list[Fraction], list[str], Fraction]:
    """(operands, operators, stated result) of one step's text."""
    left, _, right = text.rpartition("=")
    tokens = _TOKEN.findall(left)
    operands = [Fraction(t.lstrip("$")) for t in tokens[0::2]]
    return operands, tokens[1::2], Fraction(right.strip().lstrip("$"))


def _evaluate(operands: list[Fraction], ops: list[str]) -> Fraction | None:
    """``operands`` joined by ``ops``, products and quotients first; None on division by 0."""
    terms, signs = [operands[0]], []
    for op, x in zip(ops, operands[1:], strict=True):
        if op in _PRODUCT:
            if _PRODUCT[op] == "/" and x == 0:
                return None
            terms[-1] = terms[-1] * x if _PRODUCT[op] == "*" else terms[-1] / x
        else:
            terms.append(x)
            signs.append(op)
    total = terms[0]
    for sign, x in zip(signs, terms[1:], strict=True):
        total = total + x if sign == "+" else total - x
    return total
