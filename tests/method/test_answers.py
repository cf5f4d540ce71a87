from __future__ import annotations

import pytest

from heal_batch.method.answers import (
    final_answer_char_span,
    final_answer_span,
    last_boxed_char_span,
)
from heal_batch.method.steps import offsets_from_tokens


def _content(text):
    span = last_boxed_char_span(text)
    return None if span is None else text[span[0] : span[1]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\boxed{1} then \\boxed{ 22 }", "22"),
        ("x = \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
        ("set \\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("no answer here", None),
        ("\\boxed{3} and a truncated \\boxed{4", None),
        ("\\boxed{  }", None),
    ],
)
def test_last_boxed_contents(text, expected):
    assert _content(text) == expected


def test_token_span_covers_tokens_overlapping_the_answer():
    tokens = ["So", " \\boxed", "{1", "2", "}", "."]
    text, offsets = offsets_from_tokens(tokens)
    assert final_answer_span(text, offsets) == (2, 4)
    assert final_answer_span(text, [*offsets, (0, 0)]) == (2, 4)
    assert final_answer_span("none", [(0, 4)]) is None


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("3 + 4 = 7\n#### 7", "7"),
        ("#### 12\nthen more text", "12"),
        ("first #### 1\nsecond #### 1,200  ", "1,200"),
        ("boxed wins \\boxed{3}\n#### 5", "3"),
        ("empty marker ####\n", None),
        ("no answer at all", None),
    ],
)
def test_final_answer_falls_back_to_the_gsm8k_marker(text, answer):
    span = final_answer_char_span(text)
    assert (text[span[0] : span[1]] if span else None) == answer
