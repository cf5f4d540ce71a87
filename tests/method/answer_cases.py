"""The shared table of final-answer cases: grading, PURE's span and eval/utils.py must all agree.

Each case: the completion ``text``; ``raw``, the text at the answer's char span under style "auto"
(None: no answer stated, "": stated but blank); ``answer``, what grading extracts ("auto"), which is
``raw`` for a box and ``raw`` without "$", thousands separators and a final "." for ``####``.
"""

from __future__ import annotations

from typing import NamedTuple


class AnswerCase(NamedTuple):
    id: str
    text: str
    raw: str | None
    answer: str | None


CASES = [
    AnswerCase("fbox", "so the total is \\fbox{5}.", "5", "5"),
    AnswerCase("space_before_brace", "\\boxed {7}.", "7", "7"),
    AnswerCase("newline_before_brace", "\\boxed\n{7}", "7", "7"),
    AnswerCase("bare_argument", "so \\boxed 5.", "5", "5"),
    AnswerCase("nested", "x = \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}", "\\frac{1}{2}"),
    AnswerCase("escaped_pairs", r"\boxed{\{1, 2\} \cup \{3\}}", *[r"\{1, 2\} \cup \{3\}"] * 2),
    AnswerCase("escaped_unpaired", r"\boxed{\left\{ x \right.}", *[r"\left\{ x \right."] * 2),
    AnswerCase("trimmed", "\\boxed{ 22 \n}", "22", "22"),
    AnswerCase("last_box_wins", r"\boxed{3}, no: \boxed{\frac{a}{b^2}}", *[r"\frac{a}{b^2}"] * 2),
    AnswerCase("box_in_box", "\\boxed{\\boxed{5}}", "5", "5"),
    AnswerCase("truncated_last_box", "\\boxed{4} and then \\boxed{5", "4", "4"),
    AnswerCase("only_truncated_box", "We compute. \\boxed{6", None, None),
    AnswerCase("gsm8k", "9 * 2 = 18\n#### 42", "42", "42"),
    AnswerCase("gsm8k_thousands", "#### 1,234", "1,234", "1234"),
    AnswerCase("gsm8k_dollars_period", "#### $1,234,567. \nthanks", "$1,234,567.", "1234567"),
    AnswerCase("gsm8k_not_a_list", "#### (1, 2)", "(1, 2)", "(1, 2)"),
    AnswerCase("gsm8k_last_marker", "#### 1\nsecond #### 2", "2", "2"),
    AnswerCase("gsm8k_rest_of_line_only", "####\n18", "", ""),
    AnswerCase("box_then_later_marker", "\\boxed{6}\n#### 5", "6", "6"),
    AnswerCase("marker_then_box", "#### 5\n\\boxed{6}", "6", "6"),
    AnswerCase("heading_after_box", "\\boxed{18}\n\n#### Check\n18 = 18", "18", "18"),
    AnswerCase("empty_box", "\\boxed{}", "", ""),
    AnswerCase("blank_last_box", "\\boxed{3} then \\boxed{ }", "", ""),
    AnswerCase("no_answer", "The answer is 18.", None, None),
    AnswerCase("not_a_box_command", "\\boxedx{5}", None, None),
    AnswerCase("empty_text", "", None, None),
]
